use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::DomainError;

/// Random bytes in a token: 256 bits, far past the 128 that make guessing
/// hopeless, and still a short link (43 characters).
const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

/// A secret that lives in a link: a confirmation or an unsubscribe token.
/// Made from the operating system's CSPRNG (rand's `ThreadRng`), written as
/// base64url without padding so it needs no escaping in a URL or HTML.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn generate() -> Token {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only what [`Token::generate`] makes, so anything else is
    /// turned away before it reaches the database.
    pub fn parse(raw: &str) -> Result<Token, DomainError> {
        let well_formed = raw.len() == TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(raw).is_ok();
        if well_formed {
            Ok(Token(raw.to_string()))
        } else {
            Err(DomainError("not a valid token".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 kept in the database instead of the token itself, so a
    /// leaked database (or backup) confirms nobody.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// Never printed whole: a token in a log line is a working link.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.0[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_CHARS);
        assert_eq!(Token::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.hash().len(), 32);
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate();
        let too_short = &good.as_str()[1..];
        let with_slash = format!("/{}", &good.as_str()[1..]);
        let with_padding = format!("{}=", &good.as_str()[1..]);
        for bad in ["", "preview", too_short, &with_slash, &with_padding] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
        }
    }
}
