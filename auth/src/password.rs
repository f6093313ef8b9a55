//! Passwords: the policy a new password must meet, and Argon2id hashing in PHC string format.
//!
//! Argon2id is the OWASP Password Storage Cheat Sheet's first choice; its default parameters here are
//! that sheet's minimum (19 MiB of memory, 2 passes, 1 lane), which costs tens of milliseconds per
//! guess on a server and makes offline guessing of a leaked hash expensive. The hash is a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) that carries its own parameters, so raising them
//! later only needs [`PasswordHasher::needs_rehash`] at the next successful sign-in.
//!
//! [`PasswordHasher::dummy_verify`] exists because a sign-in that answers "wrong password" after 50 ms
//! and "no such account" after 1 ms tells an attacker which e-mail addresses are registered.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use prism_domain::values::PasswordHash;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes. This build computes them one after the other, so more lanes cost time, not speed.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommended minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// The most memory a hash may ask for, here or in a stored PHC string (1 GiB). A hash read from
    /// storage chooses the memory its verification allocates; a corrupted one must not be able to
    /// exhaust the process.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// What a new password must satisfy. Lengths count characters (Unicode scalar values), not bytes, so
/// that "8 characters" means the same in every script.
///
/// There is deliberately no composition rule (digits, symbols…): NIST SP 800-63B advises against them;
/// length is what makes a password hard to guess. The upper bound only keeps hashing cheap to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
        }
    }
}

impl PasswordPolicy {
    /// Whether `password` may be set as a new password. The error's text is written to follow the name
    /// of the field ("password must be at least 8 characters").
    pub fn check(&self, password: &str) -> Result<(), PasswordError> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PasswordError::TooShort { min: self.min_length });
        }
        if length > self.max_length {
            return Err(PasswordError::TooLong { max: self.max_length });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {min} characters")]
    TooShort { min: usize },
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(String),
    #[error("hashing the password failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords with Argon2id. Build one at start-up and share it: it keeps the
/// parameters and the hash that [`dummy_verify`](Self::dummy_verify) checks against.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: Argon2Params,
    /// A hash of a random password with the configured parameters, made on first use, so that a
    /// dummy verification does exactly the work of a real one.
    dummy: OnceLock<String>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(Argon2Params::OWASP).expect("OWASP's parameters are valid")
    }
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Result<Self, PasswordError> {
        if params.memory_kib > Argon2Params::MAX_MEMORY_KIB {
            return Err(PasswordError::InvalidParams(format!(
                "memory {} KiB is above the limit of {} KiB",
                params.memory_kib,
                Argon2Params::MAX_MEMORY_KIB
            )));
        }
        let argon2_params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|e| PasswordError::InvalidParams(e.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params),
            params,
            dummy: OnceLock::new(),
        })
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// Hashes `password` with a fresh random salt. Does not apply a [`PasswordPolicy`]: check that first
    /// when the password is being set.
    pub fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        let phc = self
            .argon2
            .hash_password(password.as_bytes())
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        PasswordHash::parse(&phc.to_string()).map_err(|e| PasswordError::Hashing(e.to_string()))
    }

    /// Whether `password` is the one `hash` was made from. False, never a panic, for a hash that is
    /// not a PHC string of Argon2 or asks for more than [`Argon2Params::MAX_MEMORY_KIB`]. The
    /// parameters come from the hash, so hashes made with older parameters keep verifying.
    pub fn verify(&self, password: &str, hash: &PasswordHash) -> bool {
        verify_phc(&self.argon2, password, hash.as_str())
    }

    /// Spends the time of a [`verify`](Self::verify) and forgets the outcome. Call it when the account
    /// does not exist, so that the answer comes as late as a wrong password's.
    pub fn dummy_verify(&self, password: &str) {
        let dummy = self.dummy.get_or_init(|| {
            let mut random = [0u8; 32];
            crate::fill_random(&mut random);
            // Falls back to an unusable string only if hashing itself fails, which `hash` would then
            // report on every real sign-in too.
            self.argon2
                .hash_password(&random)
                .map(|phc| phc.to_string())
                .unwrap_or_default()
        });
        std::hint::black_box(verify_phc(&self.argon2, password, dummy));
    }

    /// Whether `hash` was made with other parameters (or another algorithm) than this hasher's, so that
    /// the caller should hash the password again after it verified. True for a malformed hash.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(phc) = Phc::new(hash.as_str()) else {
            return true;
        };
        let Ok(params) = Params::try_from(&phc) else {
            return true;
        };
        phc.algorithm.as_str() != Algorithm::Argon2id.ident().as_str()
            || phc.version != Some(Version::V0x13.into())
            || params.m_cost() != self.params.memory_kib
            || params.t_cost() != self.params.iterations
            || params.p_cost() != self.params.parallelism
    }
}

fn verify_phc(argon2: &Argon2<'_>, password: &str, hash: &str) -> bool {
    let Ok(phc) = Phc::new(hash) else {
        return false;
    };
    match Params::try_from(&phc) {
        Ok(params) if params.m_cost() <= Argon2Params::MAX_MEMORY_KIB => {}
        _ => return false,
    }
    argon2.verify_password(password.as_bytes(), &phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests run unoptimised, where OWASP's cost takes a second per hash.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn hashes_verify_the_right_password_only() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery staple").unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(hasher.verify("correct horse battery staple", &hash));
        assert!(!hasher.verify("correct horse battery stapler", &hash));
        assert!(!hasher.verify("", &hash));
        // A fresh salt each time.
        assert_ne!(hasher.hash("correct horse battery staple").unwrap(), hash);
    }

    #[test]
    fn the_default_parameters_are_owasps() {
        let hasher = PasswordHasher::default();
        assert_eq!(
            hasher.params(),
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        let hash = hasher.hash("tr0ub4dor&3").unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(hasher.verify("tr0ub4dor&3", &hash));
        assert!(!hasher.needs_rehash(&hash));
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify_and_ask_for_a_rehash() {
        let old = cheap();
        let hash = old.hash("password one").unwrap();
        let new = PasswordHasher::new(Argon2Params {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert!(new.verify("password one", &hash));
        assert!(new.needs_rehash(&hash));
        assert!(!old.needs_rehash(&hash));
    }

    #[test]
    fn malformed_hashes_verify_false() {
        let hasher = cheap();
        for bad in [
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!",
            "$bcrypt$whatever",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            let hash = PasswordHash::parse(bad).unwrap();
            assert!(!hasher.verify("password", &hash), "{bad}");
        }
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_is_refused_before_allocating_it() {
        // Well-formed, and 4 TiB: without the limit this would abort the process.
        let huge =
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(Params::try_from(&Phc::new(huge).unwrap()).is_ok());
        let hash = PasswordHash::parse(huge).unwrap();
        assert!(!cheap().verify("password", &hash));
        assert!(cheap().needs_rehash(&hash));
    }

    #[test]
    fn dummy_verification_uses_the_configured_parameters() {
        let hasher = cheap();
        hasher.dummy_verify("whatever");
        hasher.dummy_verify("whatever again");
        let dummy = PasswordHash::parse(hasher.dummy.get().unwrap()).unwrap();
        assert!(!hasher.needs_rehash(&dummy));
    }

    #[test]
    fn parameters_are_checked() {
        assert!(matches!(
            PasswordHasher::new(Argon2Params {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1
            }),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(matches!(
            PasswordHasher::new(Argon2Params {
                memory_kib: 64,
                iterations: 0,
                parallelism: 1
            }),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(matches!(
            PasswordHasher::new(Argon2Params {
                memory_kib: 2 << 20,
                iterations: 1,
                parallelism: 1
            }),
            Err(PasswordError::InvalidParams(_))
        ));
    }

    #[test]
    fn the_policy_counts_characters_not_bytes() {
        let policy = PasswordPolicy::default();
        // Seven characters, fourteen bytes.
        let short = "ÄÖÜäöüé";
        assert_eq!((short.chars().count(), short.len()), (7, 14));
        let err = policy.check(short).unwrap_err();
        assert_eq!(err, PasswordError::TooShort { min: 8 });
        assert_eq!(err.to_string(), "must be at least 8 characters");
        // Eight characters of four bytes each.
        assert_eq!(policy.check(&"🔑".repeat(8)), Ok(()));
        assert_eq!(policy.check(&"a".repeat(128)), Ok(()));
        let err = policy.check(&"é".repeat(129)).unwrap_err();
        assert_eq!(err.to_string(), "must be at most 128 characters");
        assert_eq!(policy.check(""), Err(PasswordError::TooShort { min: 8 }));
    }

    #[test]
    fn debug_output_shows_no_hash() {
        let hasher = cheap();
        hasher.dummy_verify("x");
        let shown = format!("{hasher:?}");
        assert!(!shown.contains("$argon2"), "{shown}");
    }
}
