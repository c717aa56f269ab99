//! The DKIM key Herald signs with, and the public key a DNS record
//! publishes: do they belong together, and is the key strong enough?

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;

use super::Level;

/// The public half of `[send] dkim_key_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    Rsa(RsaPublicKey),
    Ed25519([u8; 32]),
}

impl SigningKey {
    /// Reads the key as lettre does (`Settings::dkim`): PKCS#1 PEM for
    /// RSA, base64 of the 32-byte secret for Ed25519.
    pub fn from_file_text(text: &str) -> Result<SigningKey, String> {
        let text = text.trim();
        if text.contains("BEGIN PRIVATE KEY") {
            return Err(
                "the key is PKCS#8; convert it to PKCS#1 (`openssl rsa -in KEY -traditional`)"
                    .into(),
            );
        }
        if text.contains("RSA PRIVATE KEY") {
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(text)
                .map_err(|e| format!("not an RSA key in PKCS#1 PEM: {e}"))?;
            return Ok(SigningKey::Rsa(key.to_public_key()));
        }
        let secret: [u8; 32] = STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("neither an RSA key in PKCS#1 PEM nor the base64 of a 32-byte Ed25519 key")?;
        let public = ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key();
        Ok(SigningKey::Ed25519(public.to_bytes()))
    }

    pub fn describe(&self) -> String {
        match self {
            SigningKey::Rsa(key) => format!("RSA {} bits", key.n().bits()),
            SigningKey::Ed25519(_) => "Ed25519".to_string(),
        }
    }

    /// The TXT record that publishes this key.
    pub fn record(&self) -> String {
        match self {
            SigningKey::Rsa(key) => {
                let der = key
                    .to_public_key_der()
                    .map(|d| STANDARD.encode(d.as_bytes()))
                    .unwrap_or_default();
                format!("v=DKIM1; k=rsa; p={der}")
            }
            SigningKey::Ed25519(key) => format!("v=DKIM1; k=ed25519; p={}", STANDARD.encode(key)),
        }
    }

    /// Whether a record's key is this key's public half.
    pub fn matches(&self, published: &PublishedKey) -> bool {
        match (self, published) {
            (SigningKey::Rsa(ours), PublishedKey::Rsa(theirs)) => ours == theirs,
            (SigningKey::Ed25519(ours), PublishedKey::Ed25519(theirs)) => ours == theirs,
            _ => false,
        }
    }

    /// RSA under 1024 bits is refused by receivers (RFC 8301); under 2048
    /// is what Gmail and Yahoo ask for. Ed25519 is strong but many
    /// receivers, Gmail among them, cannot verify it yet.
    pub fn strength(&self) -> (Level, String, Option<&'static str>) {
        match self {
            SigningKey::Rsa(key) => {
                let bits = key.n().bits();
                if bits < 1024 {
                    (
                        Level::Error,
                        format!("the DKIM key is RSA {bits} bits: receivers ignore keys under 1024 bits"),
                        Some("make a 2048-bit key (`openssl genrsa -traditional 2048`) and publish it under a new selector"),
                    )
                } else if bits < 2048 {
                    (
                        Level::Warning,
                        format!("the DKIM key is RSA {bits} bits: Gmail and Yahoo expect at least 2048"),
                        Some("make a 2048-bit key (`openssl genrsa -traditional 2048`) and publish it under a new selector"),
                    )
                } else {
                    (Level::Ok, format!("the DKIM key is RSA {bits} bits"), None)
                }
            }
            SigningKey::Ed25519(_) => (
                Level::Warning,
                "the DKIM key is Ed25519, which many receivers (Gmail among them) cannot verify yet"
                    .to_string(),
                Some("sign with a 2048-bit RSA key"),
            ),
        }
    }
}

/// The key a DKIM record publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishedKey {
    Rsa(RsaPublicKey),
    Ed25519([u8; 32]),
}

/// A DKIM record's tags (RFC 6376 §3.6.1), as `(name, value)` with the
/// whitespace that may fold a value removed.
pub fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .map(|(name, value)| {
            (
                name.trim().to_ascii_lowercase(),
                value.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

/// The key in a DKIM record. `k=` defaults to rsa; an empty `p=` means the
/// key was revoked.
pub fn published_key(record: &str) -> Result<PublishedKey, String> {
    let tags = tags(record);
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(version) = tag("v") {
        if version != "DKIM1" {
            return Err(format!("v={version} is not DKIM1"));
        }
    }
    let p = tag("p").ok_or("the record has no p= tag")?;
    if p.is_empty() {
        return Err("p= is empty: the key was revoked".into());
    }
    let bytes = STANDARD
        .decode(p)
        .map_err(|e| format!("p= is not base64: {e}"))?;
    match tag("k").unwrap_or("rsa").to_ascii_lowercase().as_str() {
        // SubjectPublicKeyInfo as RFC 6376 says, or a bare RSAPublicKey,
        // which some tools publish and verifiers accept.
        "rsa" => RsaPublicKey::from_public_key_der(&bytes)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&bytes))
            .map(PublishedKey::Rsa)
            .map_err(|e| format!("p= is not an RSA public key: {e}")),
        "ed25519" => bytes
            .try_into()
            .map(PublishedKey::Ed25519)
            .map_err(|_| "p= is not a 32-byte Ed25519 key".to_string()),
        other => Err(format!("k={other} is not a key type DKIM knows")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;

    fn rsa_key(bits: usize) -> (String, SigningKey) {
        let key = rsa::RsaPrivateKey::new(&mut rand_core_rng(), bits).unwrap();
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        let signing = SigningKey::from_file_text(&pem).unwrap();
        (pem, signing)
    }

    fn rand_core_rng() -> rsa::rand_core::OsRng {
        rsa::rand_core::OsRng
    }

    #[test]
    fn a_record_made_from_the_key_matches_it_and_another_does_not() {
        let (_, ours) = rsa_key(1024);
        let (_, other) = rsa_key(1024);
        let published = published_key(&ours.record()).unwrap();
        assert!(ours.matches(&published));
        assert!(!other.matches(&published));
        // Folded across strings and lines, as DNS consoles publish it.
        let folded = ours.record().replace("p=", "p=\t ").replacen('A', "A ", 3);
        assert!(ours.matches(&published_key(&folded).unwrap()));
    }

    #[test]
    fn ed25519_keys_match_their_published_half() {
        let secret = STANDARD.encode([7u8; 32]);
        let ours = SigningKey::from_file_text(&secret).unwrap();
        let published = published_key(&ours.record()).unwrap();
        assert!(ours.matches(&published));
        let other = SigningKey::from_file_text(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(!other.matches(&published));
        assert_eq!(ours.strength().0, Level::Warning);
    }

    #[test]
    fn broken_records_say_what_is_wrong() {
        let cases = [
            ("v=DKIM1; k=rsa; p=", "revoked"),
            ("v=DKIM1; k=rsa", "no p="),
            ("v=DKIM2; p=AAAA", "not DKIM1"),
            ("v=DKIM1; p=!!!", "not base64"),
            ("v=DKIM1; p=AAAA", "not an RSA public key"),
            ("v=DKIM1; k=ed25519; p=AAAA", "32-byte"),
            ("v=DKIM1; k=dsa; p=AAAA", "k=dsa"),
        ];
        for (record, expected) in cases {
            let error = published_key(record).unwrap_err();
            assert!(error.contains(expected), "{record}: {error}");
        }
    }

    #[test]
    fn rsa_strength_follows_rfc_8301_and_the_mailbox_providers() {
        assert_eq!(rsa_key(512).1.strength().0, Level::Error);
        assert_eq!(rsa_key(1024).1.strength().0, Level::Warning);
        assert_eq!(rsa_key(2048).1.strength().0, Level::Ok);
    }

    #[test]
    fn key_files_lettre_refuses_are_refused_here_too() {
        assert!(
            SigningKey::from_file_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
                .unwrap_err()
                .contains("PKCS#8")
        );
        assert!(SigningKey::from_file_text("hello").is_err());
    }
}
