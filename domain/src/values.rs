//! Validated value types. Each parses once at the edge (deserialisation) so the rest of the domain can
//! trust its content.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod identity;
mod media;
mod public_key;

pub use identity::{Email, PasswordHash, SecretHash};
pub use media::{FILE_NAME_PATTERN, FileName, MIME_TYPE_PATTERN, MimeType};
pub use public_key::{PublicKey, SignatureError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("participant `{0}` is neither a user id nor an e-mail address")]
    ParticipantId(String),
    #[error("`{0}` is not a SHA3-256 digest: expected 64 hexadecimal characters")]
    Sha3Digest(String),
    #[error("`{0}` is not an e-mail address")]
    Email(String),
    #[error("not a password hash in PHC string format")]
    PasswordHash,
    #[error("not a SHA-256 digest: expected 64 hexadecimal characters")]
    SecretHash,
    #[error(
        "`{0}` is not a custom role name: use 1–64 lowercase letters, digits, `-` and `_`, and no built-in role's name"
    )]
    RoleName(String),
    #[error("public key is invalid: {0}")]
    PublicKey(String),
    #[error(
        "`{0}` is not a MIME type: expected `type/subtype` with optional `; name=value` parameters (tokens)"
    )]
    MimeType(String),
    #[error("`{name}` is not a file name: {why}")]
    FileName { name: String, why: &'static str },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; the limit is {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} contains a control character (U+{code:04X}); only tab and line breaks are allowed")]
    ControlCharacter { field: &'static str, code: u32 },
}

/// Checks a human-readable text field: trimmed non-empty (when required), bounded in length, and free
/// of control characters other than tab and line breaks. (A NUL in particular could never be stored
/// by the read models, and an event, once in the log, can never be taken out again.)
pub fn check_text(field: &'static str, value: &str, max: usize, required: bool) -> Result<(), ValueError> {
    if required && value.trim().is_empty() {
        return Err(ValueError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(ValueError::TooLong { field, len, max });
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ValueError::ControlCharacter {
            field,
            code: u32::from(c),
        });
    }
    Ok(())
}

/// A SHA3-256 digest, as Cocos computes for algorithms and datasets; stored as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha3Digest(String);

impl JsonSchema for Sha3Digest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha3Digest".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "SHA3-256 digest, lowercase hexadecimal"
        })
    }
}

impl Sha3Digest {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let lower = value.to_ascii_lowercase();
        if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValueError::Sha3Digest(value.to_owned()));
        }
        Ok(Self(lower))
    }

    pub fn of(bytes: &[u8]) -> Self {
        use sha3::Digest as _;
        Self(hex::encode(sha3::Sha3_256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha3Digest {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Sha3Digest> for String {
    fn from(d: Sha3Digest) -> Self {
        d.0
    }
}

impl fmt::Display for Sha3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_refuse_control_characters() {
        assert_eq!(
            check_text("name", "bad\u{0}name", 10, true),
            Err(ValueError::ControlCharacter {
                field: "name",
                code: 0
            })
        );
        assert!(check_text("description", "two\nlines\twith a tab", 100, false).is_ok());
    }

    #[test]
    fn digests_are_normalised_and_checked() {
        let upper = "A".repeat(64);
        assert_eq!(Sha3Digest::parse(&upper).unwrap().as_str(), "a".repeat(64));
        assert!(Sha3Digest::parse("abc").is_err());
        assert!(Sha3Digest::parse(&"g".repeat(64)).is_err());
        assert_eq!(
            Sha3Digest::of(b"").as_str(),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }
}
