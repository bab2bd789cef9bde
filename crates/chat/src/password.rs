//! Password hashing (SPEC §5: "passwords are stored only as a slow hash").
//!
//! Argon2id with the OWASP minimum parameters: 19 MiB of memory, 2 passes, 1 lane
//! (`Params::new(19_456, 2, 1, None)`). They are argon2's defaults too; they are spelled out here so
//! a change of the crate's defaults cannot silently change them, and because they keep a hash fast
//! enough for tests while still costing an attacker memory. The parameters travel inside each PHC
//! string, so [`verify`] keeps working for hashes made with other parameters.
//!
//! The input node hashes at registration ([`hash`]) and checks at login ([`verify`]) against the
//! hash that [`crate::ops::Read::Credentials`] returns; only the hash ever reaches the store.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (OWASP minimum for Argon2id).
const MEMORY_KIB: u32 = 19_456;
/// Number of passes.
const PASSES: u32 = 2;
/// Degree of parallelism.
const LANES: u32 = 1;

/// The hasher with this crate's parameters.
fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("constant Argon2 parameters are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt into a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
///
/// # Panics
/// Only if the operating system's random number generator fails, when no salt can be drawn.
pub fn hash(password: &str) -> String {
    hasher()
        .hash_password(password.as_bytes())
        .expect("the OS random number generator gives a salt")
        .to_string()
}

/// Whether `password` matches `phc`, a string made by [`hash`]. A string that is not a valid PHC
/// hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `s` parses as a PHC string (the writer refuses to store anything else as a hash).
pub(crate) fn is_phc(s: &str) -> bool {
    PasswordHash::new(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse battery");
        assert_ne!(phc, "correct horse battery");
        assert!(!phc.contains("correct horse battery"));
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(is_phc(&phc));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same password"), hash("same password"));
    }

    #[test]
    fn garbage_hash_matches_nothing() {
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", ""));
        assert!(!is_phc("plain text"));
    }
}
