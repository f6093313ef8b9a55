//! Values of identity: e-mail addresses, password hashes and the hashes of opaque secrets. The domain
//! never sees a password or a secret in clear: the application layer hashes them before it asks.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ValueError;

/// An e-mail address, lowercased, so that one mailbox is one account. Checked for shape only (one `@`,
/// a dotless-or-dotted domain, no white space, control characters or characters that would need
/// quoting); whether it exists is proven by the verification mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit for a forward path.
    pub const MAX_LEN: usize = 254;

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::Email(value.to_owned());
        if value.is_empty() || value.chars().count() > Self::MAX_LEN {
            return Err(invalid());
        }
        let normalised = value.to_lowercase();
        let (local, domain) = normalised.split_once('@').ok_or_else(invalid)?;
        // White space (also around the address: it is refused, not trimmed, so that what is stored is
        // what was sent), control characters, the byte-order mark, and what would need quoting.
        let bad_char =
            |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}' || "<>()[],;:\\\"@".contains(c);
        if local.is_empty()
            || domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || local.chars().any(bad_char)
            || domain.chars().any(bad_char)
        {
            return Err(invalid());
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$m=…`). The domain only stores and hands it
/// back; hashing and verifying are the application layer's (they are slow and salted on purpose).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        if !value.starts_with('$') || value.len() > 512 || value.chars().any(char::is_whitespace) {
            return Err(ValueError::PasswordHash);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never print a hash into logs, even a salted one.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PasswordHash> for String {
    fn from(h: PasswordHash) -> Self {
        h.0
    }
}

/// The SHA-256 of a high-entropy opaque secret (refresh token, API key, invitation or reset token),
/// lowercase hex. A fast hash is enough for 256-bit random secrets; passwords use [`PasswordHash`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct SecretHash(String);

impl SecretHash {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let lower = value.to_ascii_lowercase();
        if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValueError::SecretHash);
        }
        Ok(Self(lower))
    }

    /// The hash of `secret`.
    pub fn of(secret: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(hex::encode(sha2::Sha256::digest(secret)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in constant time, so that a presented secret's hash cannot be found byte by byte.
    pub fn matches(&self, other: &SecretHash) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl TryFrom<String> for SecretHash {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SecretHash> for String {
    fn from(h: SecretHash) -> Self {
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("Ada@Example.ORG").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            " ada@example.org",
            "ada@example.org\n",
            "ada@exa\u{85}mple.org",
            "ada@exa\u{feff}mple.org",
            "",
            "ada",
            "@example.org",
            "ada@",
            "a da@example.org",
            "ada@@example.org",
            "ada@.org",
            "ada@x..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn user_ids_derive_from_the_normalised_address() {
        use crate::ids::UserId;
        let a = UserId::for_email(&Email::parse("Ada@Example.org").unwrap());
        let b = UserId::for_email(&Email::parse("ada@example.org").unwrap());
        assert_eq!(a, b);
        assert_ne!(a, UserId::for_email(&Email::parse("bob@example.org").unwrap()));
    }

    #[test]
    fn secret_hashes_compare_in_full() {
        let h = SecretHash::of(b"secret");
        assert!(h.matches(&SecretHash::of(b"secret")));
        assert!(!h.matches(&SecretHash::of(b"secreT")));
        assert!(SecretHash::parse("abc").is_err());
    }

    #[test]
    fn password_hashes_do_not_print() {
        let h = PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap();
        assert_eq!(format!("{h:?}"), "PasswordHash(…)");
    }
}
