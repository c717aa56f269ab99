//! The per-subscriber part of a tracked link (`[tracking] per_subscriber`):
//! `?s=1234-9f86d081884c7d65`, the delivery the copy was made for and the
//! first 64 bits of HMAC-SHA256(key, id), as in a VERP tag. The key is 32
//! random bytes kept in the database (`store::secrets::click_key`), apart
//! from the VERP key so that neither tag can stand for the other. Without
//! the key nobody can make a token that names another delivery, so a click
//! cannot be pinned on someone else.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::DomainError;

/// Hex digits of the MAC in a token: 64 bits.
const MAC_HEX: usize = 16;
/// The most digits of an i64.
const MAX_ID_DIGITS: usize = 19;

/// The key that signs click tokens. Its bytes never print.
#[derive(Clone)]
pub struct ClickKey([u8; 32]);

impl ClickKey {
    pub fn generate() -> ClickKey {
        ClickKey(rand::random())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ClickKey, DomainError> {
        <[u8; 32]>::try_from(bytes)
            .map(ClickKey)
            .map_err(|_| DomainError(format!("a click key is 32 bytes, not {}", bytes.len())))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, delivery_id: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"herald-click-v1:");
        mac.update(&delivery_id.to_be_bytes());
        mac
    }

    /// The token of one delivery's copy.
    pub fn token_for(&self, delivery_id: i64) -> String {
        let mac = self.mac(delivery_id).finalize().into_bytes();
        format!("{delivery_id}-{}", hex::encode(&mac[..MAC_HEX / 2]))
    }

    /// The delivery a token names, if this key signed it; `None` for
    /// anything else (a forged, altered or truncated token).
    pub fn delivery_of(&self, token: &str) -> Option<i64> {
        let (id, mac) = token.split_once('-')?;
        if id.is_empty()
            || id.len() > MAX_ID_DIGITS
            || !id.bytes().all(|b| b.is_ascii_digit())
            || mac.len() != MAC_HEX
        {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        let mac = hex::decode(mac).ok()?;
        // Constant time: a timing difference must not reveal how much of a
        // guessed token was right.
        self.mac(id).verify_truncated_left(&mac).ok()?;
        Some(id)
    }
}

impl std::fmt::Debug for ClickKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClickKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_delivery_and_nothing_else() {
        let key = ClickKey::from_bytes(&[9u8; 32]).unwrap();
        let token = key.token_for(1234);
        assert!(token.starts_with("1234-"), "{token}");
        assert_eq!(key.delivery_of(&token), Some(1234));
        assert_eq!(key.delivery_of(&key.token_for(i64::MAX)), Some(i64::MAX));
        let mac = token.split_once('-').unwrap().1;
        let other = ClickKey::from_bytes(&[8u8; 32]).unwrap();
        for forged in [
            format!("1235-{mac}"),
            format!("1234-{}", &mac[..15]),
            format!("1234-{mac}0"),
            format!("1234-{}g", &mac[..15]),
            "1234".to_string(),
            format!("-{mac}"),
            format!("+1234-{mac}"),
            format!("99999999999999999999-{mac}"),
            String::new(),
        ] {
            assert_eq!(key.delivery_of(&forged), None, "{forged}");
        }
        assert_eq!(other.delivery_of(&token), None);
        assert!(ClickKey::from_bytes(&[1u8; 31]).is_err());
        assert_eq!(format!("{key:?}"), "ClickKey(..)");
    }
}
