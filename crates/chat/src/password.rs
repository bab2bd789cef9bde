//! Password hashing (SPEC §5: "passwords are stored only as a slow hash").
//!
//! Argon2id with the OWASP minimum parameters: 19 MiB of memory, 2 passes, 1 lane
//! (`Params::new(19_456, 2, 1, None)`). They are argon2's defaults too; they are spelled out here so
//! a change of the crate's defaults cannot silently change them, and because they keep a hash fast
//! enough for tests while still costing an attacker memory. The parameters travel inside each PHC
//! string, so [`verify`] keeps working for hashes made with other parameters.
//!
//! The input node hashes at registration and checks at login against the hash that
//! [`crate::ops::Read::Credentials`] returns; only the hash ever reaches the store. A server does
//! both in a [`Memory`] it keeps ([`hash_with`], [`verify_with`]), on a fixed number of threads, so
//! that hashing takes a fixed amount of memory however many logins arrive at once; [`hash`] and
//! [`verify`] allocate for one call.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Memory cost in KiB (OWASP minimum for Argon2id).
const MEMORY_KIB: u32 = 19_456;
/// Number of passes.
const PASSES: u32 = 2;
/// Degree of parallelism.
const LANES: u32 = 1;

/// This crate's parameters.
fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("constant Argon2 parameters are within argon2's limits")
}

/// The working memory of one hash (19 MiB of argon2 [`Block`]s), allocated once and reused by
/// every [`hash_with`] and [`verify_with`] given it.
///
/// A hash needs all of it at once. Allocating it afresh for every hash, on whatever thread, is
/// what let a burst of logins grow a node by a hash's memory per concurrent login, never given
/// back (the allocator keeps freed blocks of that size in per-thread arenas). A fixed number of
/// threads, each with its own `Memory`, bounds what hashing can ever take.
pub struct Memory {
    /// The blocks: as many as this crate's parameters need.
    blocks: Vec<Block>,
}

impl Memory {
    /// The memory one hash with this crate's parameters needs ([`Memory::BYTES`]).
    pub fn new() -> Self {
        Memory {
            blocks: vec![Block::default(); params().block_count()],
        }
    }

    /// How many bytes a `Memory` holds.
    pub const BYTES: usize = MEMORY_KIB as usize * 1024;
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memory({} blocks)", self.blocks.len())
    }
}

/// Hashes `password` with a fresh random salt into a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), allocating the hash's memory for this one
/// call (tests, examples; a server hashes with [`hash_with`] on threads of its own).
///
/// # Panics
/// Only if the operating system's random number generator fails, when no salt can be drawn.
pub fn hash(password: &str) -> String {
    hash_with(&mut Memory::new(), password)
}

/// [`hash`], in `memory`.
///
/// # Panics
/// Only if the operating system's random number generator fails, when no salt can be drawn.
pub fn hash_with(memory: &mut Memory, password: &str) -> String {
    let params = params();
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory.blocks)
        .expect("a password and a generated salt are within argon2's limits");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("constant parameters encode"),
        salt: Some(salt),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output length")),
    }
    .to_string()
}

/// Whether `password` matches `phc`, a string made by [`hash`], allocating the hash's memory for
/// this one call (see [`verify_with`]).
pub fn verify(password: &str, phc: &str) -> bool {
    verify_with(&mut Memory::new(), password, phc)
}

/// Whether `password` matches `phc`, computed in `memory`. The parameters travel inside each PHC
/// string, so hashes made with other parameters verify too, as long as they need no more memory
/// than a [`Memory`] holds; a hash that would need more, or a string that is not a valid argon2
/// PHC hash, matches nothing (a hash stored by this crate never needs more).
pub fn verify_with(memory: &mut Memory, password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Some(blocks) = memory.blocks.get_mut(..params.block_count()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        blocks,
    );
    // `Output`'s equality is in constant time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| &computed == expected)
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
    fn memory_is_reused_across_hashes_and_checks() {
        let mut memory = Memory::new();
        let first = hash_with(&mut memory, "one password");
        let second = hash_with(&mut memory, "another password");
        assert!(verify_with(&mut memory, "one password", &first));
        assert!(!verify_with(&mut memory, "one password", &second));
        assert!(verify_with(&mut memory, "another password", &second));
        // Made with a fresh memory, checked with a used one, and the other way round.
        assert!(verify_with(&mut memory, "x password", &hash("x password")));
        assert!(verify("one password", &first));
    }

    #[test]
    fn other_parameters_verify_within_the_memory() {
        use argon2::password_hash::PasswordHasher;
        let small = Params::new(64, 1, 1, None).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, small)
            .hash_password(b"small")
            .unwrap()
            .to_string();
        let mut memory = Memory::new();
        assert!(verify_with(&mut memory, "small", &phc));
        assert!(!verify_with(&mut memory, "smalL", &phc));
        // More memory than a `Memory` holds: refused, not allocated.
        let big = phc.replace("m=64", &format!("m={}", MEMORY_KIB * 2));
        assert!(PasswordHash::new(&big).is_ok());
        assert!(!verify_with(&mut memory, "small", &big));
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
