//! VERP: an envelope sender that names the one delivery it carried, so a
//! bounce maps to that row even when the bounce's body is mangled.
//!
//! `bounces@example.com` becomes `bounces+1234-9f86d081884c7d65@example.com`:
//! the delivery id, then the first 64 bits of HMAC-SHA256(key, id). The key
//! is 32 random bytes kept in the database, so there is no secret to
//! configure and nothing is stored per row (no column or index on a
//! million-row snapshot). The tag is lowercase because MTAs may fold the
//! case of a local part. 64 bits is far beyond what anyone can guess by
//! mailing bounces at us, and a tag cannot be altered to name another
//! delivery without the key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::DomainError;

/// The longest local part RFC 5321 allows.
const MAX_LOCAL_PART: usize = 64;
/// `+`, an i64 in decimal (at most 19 digits), `-`, 16 hex digits.
const MAX_TAG: usize = 1 + 19 + 1 + 16;
/// Hex digits of the MAC in a tag: 64 bits.
const MAC_HEX: usize = 16;

/// The key that signs VERP tags. Its bytes never print.
#[derive(Clone)]
pub struct VerpKey([u8; 32]);

impl VerpKey {
    pub const LEN: usize = 32;

    pub fn generate() -> VerpKey {
        VerpKey(rand::random())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<VerpKey, DomainError> {
        <[u8; 32]>::try_from(bytes)
            .map(VerpKey)
            .map_err(|_| DomainError(format!("a VERP key is 32 bytes, not {}", bytes.len())))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, delivery_id: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"herald-verp-v1:");
        mac.update(&delivery_id.to_be_bytes());
        mac
    }
}

impl std::fmt::Debug for VerpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerpKey(..)")
    }
}

/// `[bounces] return_path`, validated: an address whose local part leaves
/// room for a tag and has no `+` of its own (the tag's delimiter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath {
    local: String,
    domain: String,
}

impl ReturnPath {
    pub fn parse(text: &str) -> Result<ReturnPath, DomainError> {
        let trimmed = text.trim();
        let address: lettre::Address = trimmed
            .parse()
            .map_err(|e| DomainError(format!("{trimmed:?} is not an email address ({e})")))?;
        let local = address.user().to_ascii_lowercase();
        if local.contains('+') {
            return Err(DomainError(format!(
                "{trimmed:?} already has a '+' in its local part; give the plain address \
                 (Herald adds +TAG, and the MTA's recipient_delimiter must be '+')"
            )));
        }
        if local.len() + MAX_TAG > MAX_LOCAL_PART {
            return Err(DomainError(format!(
                "the local part of {trimmed:?} is too long to carry a tag; keep it to {} characters",
                MAX_LOCAL_PART - MAX_TAG
            )));
        }
        // The A-label: the envelope sender of every message is made from it.
        let domain = super::a_label_domain(address.domain()).ok_or_else(|| {
            DomainError(format!(
                "the domain of {trimmed:?} is not a valid domain name"
            ))
        })?;
        Ok(ReturnPath {
            local,
            domain: domain.to_ascii_lowercase(),
        })
    }

    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// Encodes and checks VERP addresses for one return path and key.
#[derive(Debug, Clone)]
pub struct Verp {
    return_path: ReturnPath,
    key: VerpKey,
}

impl Verp {
    pub fn new(return_path: ReturnPath, key: VerpKey) -> Verp {
        Verp { return_path, key }
    }

    pub fn return_path(&self) -> &ReturnPath {
        &self.return_path
    }

    /// The envelope sender of one delivery.
    pub fn address_for(&self, delivery_id: i64) -> String {
        let mac = self.key.mac(delivery_id).finalize().into_bytes();
        let tag = hex::encode(&mac[..MAC_HEX / 2]);
        format!(
            "{}+{delivery_id}-{tag}@{}",
            self.return_path.local, self.return_path.domain
        )
    }

    /// The delivery an address names, if it carries a tag this key signed.
    /// Case is ignored, as is the domain: relays rewrite domains
    /// (masquerading, virtual aliases), and the MAC alone is the proof.
    /// Angle brackets and surrounding space are tolerated.
    pub fn delivery_of(&self, address: &str) -> Option<i64> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, _domain) = address.rsplit_once('@')?;
        let local = local.to_ascii_lowercase();
        let tag = local
            .strip_prefix(self.return_path.local.as_str())?
            .strip_prefix('+')?;
        let (id, mac) = tag.split_once('-')?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        if mac.len() != MAC_HEX {
            return None;
        }
        let mac = hex::decode(mac).ok()?;
        // Constant time: a timing difference must not reveal how much of a
        // guessed tag was right.
        self.key.mac(id).verify_truncated_left(&mac).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verp() -> Verp {
        Verp::new(
            ReturnPath::parse("Bounces@Example.com").unwrap(),
            VerpKey::from_bytes(&[7u8; 32]).unwrap(),
        )
    }

    #[test]
    fn an_address_round_trips_in_any_case_and_brackets() {
        let verp = verp();
        let address = verp.address_for(1234);
        assert!(address.starts_with("bounces+1234-"), "{address}");
        assert!(address.ends_with("@example.com"), "{address}");
        assert_eq!(address, address.to_ascii_lowercase());
        assert!(address.len() < 64);
        assert_eq!(verp.delivery_of(&address), Some(1234));
        assert_eq!(verp.delivery_of(&address.to_ascii_uppercase()), Some(1234));
        assert_eq!(verp.delivery_of(&format!(" <{address}> ")), Some(1234));
        assert_eq!(
            verp.delivery_of(&address.replace("example.com", "relay.example.net")),
            Some(1234)
        );
        assert_eq!(
            verp.delivery_of(&verp.address_for(i64::MAX)),
            Some(i64::MAX)
        );
    }

    #[test]
    fn forged_altered_and_foreign_tags_are_refused() {
        let verp = verp();
        let genuine = verp.address_for(1234);
        let mac = genuine
            .split_once('-')
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0;
        // Another delivery's id with this MAC.
        assert_eq!(
            verp.delivery_of(&format!("bounces+1235-{mac}@example.com")),
            None
        );
        // One hex digit changed.
        let mut altered = mac.to_string().into_bytes();
        altered[0] = if altered[0] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            verp.delivery_of(&format!("bounces+1234-{altered}@example.com")),
            None
        );
        // Signed with another key.
        let other = Verp::new(
            ReturnPath::parse("bounces@example.com").unwrap(),
            VerpKey::from_bytes(&[8u8; 32]).unwrap(),
        );
        assert_eq!(verp.delivery_of(&other.address_for(1234)), None);
        for junk in [
            "",
            "@",
            "bounces@example.com",
            "bounces+@example.com",
            "bounces+1234@example.com",
            "bounces+-@example.com",
            "bounces+1234-@example.com",
            "other+1234-0123456789abcdef@example.com",
            "bounces+99999999999999999999-0123456789abcdef@example.com",
            "bounces+12x4-0123456789abcdef@example.com",
            "bounces+1234-0123456789abcdeg@example.com",
            "bounces+1234-0123456789abcdef00@example.com",
            "bounces+1234-é123456789abcdef@example.com",
        ] {
            assert_eq!(verp.delivery_of(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn bad_return_paths_are_refused_with_a_reason() {
        for (text, reason) in [
            ("not an address", "not an email address"),
            ("bounces+x@example.com", "'+'"),
            (&format!("{}@example.com", "b".repeat(28)), "too long"),
        ] {
            let error = ReturnPath::parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
        assert_eq!(
            ReturnPath::parse(" bounces@example.com ")
                .unwrap()
                .address(),
            "bounces@example.com"
        );
        assert_eq!(
            ReturnPath::parse("bounces@例子.中国").unwrap().address(),
            "bounces@xn--fsqu00a.xn--fiqs8s",
            "the envelope sender needs no SMTPUTF8"
        );
    }

    #[test]
    fn the_key_never_prints() {
        let key = VerpKey::from_bytes(&[0xab; 32]).unwrap();
        assert!(!format!("{key:?}").contains("ab"));
        assert!(VerpKey::from_bytes(&[1, 2, 3]).is_err());
    }
}
