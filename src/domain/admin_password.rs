//! The editor's admin password, kept only as an Argon2id hash (a PHC
//! string such as `$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), made by
//! `herald admin hash-password` and read from `HERALD_ADMIN_PASSWORD_HASH`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::DomainError;

/// A checked Argon2id PHC string. Verifying costs tens of milliseconds of
/// CPU by design: call [`AdminPasswordHash::verify`] off the async threads.
#[derive(Clone)]
pub struct AdminPasswordHash(String);

impl std::fmt::Debug for AdminPasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secret like a password, but an offline guessing target.
        f.write_str("AdminPasswordHash(***)")
    }
}

impl AdminPasswordHash {
    /// Accepts only Argon2id: argon2i and argon2d are weaker against one
    /// attack or the other, and a bcrypt or plain string here is a mistake.
    pub fn parse(phc: &str) -> Result<Self, DomainError> {
        let phc = phc.trim();
        let parsed = PasswordHash::new(phc).map_err(|e| {
            DomainError(format!(
                "HERALD_ADMIN_PASSWORD_HASH is not a PHC string ({e}); make one with `herald admin hash-password`"
            ))
        })?;
        if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
            return Err(DomainError(format!(
                "HERALD_ADMIN_PASSWORD_HASH uses {}, not argon2id; make one with `herald admin hash-password`",
                parsed.algorithm
            )));
        }
        Ok(AdminPasswordHash(phc.to_string()))
    }

    /// Hashes `password` with Argon2id's recommended parameters and a
    /// random salt.
    pub fn hash(password: &str) -> Result<Self, DomainError> {
        if password.is_empty() {
            return Err(DomainError("the password is empty".into()));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| DomainError(format!("hashing the password: {e}")))?;
        Ok(AdminPasswordHash(hash.to_string()))
    }

    /// Whether `password` is the one hashed. Constant-time in the password
    /// (argon2 compares the outputs so).
    pub fn verify(&self, password: &str) -> bool {
        match PasswordHash::new(&self.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// The PHC string, to print once for the operator to store.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = AdminPasswordHash::hash("correct horse").unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$"));
        let again = AdminPasswordHash::parse(hash.as_phc()).unwrap();
        assert!(again.verify("correct horse"));
        assert!(!again.verify("correct horse "));
        assert!(!again.verify(""));
    }

    #[test]
    fn other_strings_are_refused_with_the_fix() {
        for bad in [
            "",
            "hunter2",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        ] {
            let error = AdminPasswordHash::parse(bad).unwrap_err();
            assert!(
                error.0.contains("herald admin hash-password"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_hash() {
        let hash = AdminPasswordHash::hash("x").unwrap();
        assert!(!format!("{hash:?}").contains("argon2"));
    }
}
