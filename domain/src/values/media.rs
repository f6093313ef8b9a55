//! What a file is called and what it holds: a base file name and a MIME type.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ValueError;

/// A MIME type (RFC 6838, RFC 9110): `type/subtype`, each 1–127 characters of a restricted name, and
/// optional parameters `; name=value` whose name and value are tokens. Type, subtype and parameter
/// names are case-insensitive and kept in lower case, parameters written `;name=value`; values keep
/// their case. At most
/// [`MimeType::MAX_LEN`] characters. A quoted parameter value (`charset="utf-8"`) is not taken: the
/// token form says the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MimeType(String);

/// The JSON Schema (and OpenAPI) pattern of what [`MimeType::parse`] takes.
pub const MIME_TYPE_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}([ \\t]*;[ \\t]*[A-Za-z0-9!#$%&'*+.^_`|~-]+=[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$";

impl MimeType {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::MimeType(value.chars().take(Self::MAX_LEN).collect());
        if value.len() > Self::MAX_LEN {
            return Err(invalid());
        }
        // Blanks are allowed around each `;`, and nowhere else.
        let blank = [' ', '\t'];
        let parts: Vec<&str> = value.split(';').collect();
        let last = parts.len() - 1;
        let essence = if last > 0 {
            parts[0].trim_end_matches(blank)
        } else {
            parts[0]
        };
        let (kind, subtype) = essence.split_once('/').ok_or_else(invalid)?;
        if !is_restricted_name(kind) || !is_restricted_name(subtype) {
            return Err(invalid());
        }
        let mut normal = format!("{}/{}", kind.to_ascii_lowercase(), subtype.to_ascii_lowercase());
        for (i, parameter) in parts.iter().enumerate().skip(1) {
            let parameter = parameter.trim_start_matches(blank);
            let parameter = if i < last {
                parameter.trim_end_matches(blank)
            } else {
                parameter
            };
            let (name, value) = parameter.split_once('=').ok_or_else(invalid)?;
            if !is_token(name) || !is_token(value) {
                return Err(invalid());
            }
            normal.push(';');
            normal.push_str(&name.to_ascii_lowercase());
            normal.push('=');
            normal.push_str(value);
        }
        Ok(Self(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `type/subtype`, without parameters.
    pub fn essence(&self) -> &str {
        self.0.split(';').next().unwrap_or_default()
    }
}

/// RFC 6838's restricted-name: a letter or digit, then up to 126 of letters, digits and `!#$&-^_.+`.
fn is_restricted_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=127).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(b))
}

/// RFC 9110's token: one or more of letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl JsonSchema for MimeType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MimeType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": MimeType::MAX_LEN,
            "pattern": MIME_TYPE_PATTERN,
            "description": "MIME type: `type/subtype` in lower case, with optional `; name=value` parameters"
        })
    }
}

impl TryFrom<String> for MimeType {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MimeType> for String {
    fn from(m: MimeType) -> Self {
        m.0
    }
}

impl fmt::Display for MimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The base name of a file, as a Cocos agent matches an upload against what it expects: 1–255
/// characters, no `/` or `\`, no control character, and neither `.` nor `..`. It names a file, never a
/// path, so that no one can make an agent write anywhere but where it keeps its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

/// The JSON Schema (and OpenAPI) pattern of [`FileName`]; `.` and `..` match it but are refused.
pub const FILE_NAME_PATTERN: &str = "^[^/\\\\\\x00-\\x1f\\x7f-\\x9f]{1,255}$";

impl FileName {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let refuse = |why: &'static str| ValueError::FileName {
            name: value.chars().take(Self::MAX_LEN).collect(),
            why,
        };
        let len = value.chars().count();
        if len == 0 {
            return Err(refuse("it is empty"));
        }
        if len > Self::MAX_LEN {
            return Err(refuse("it is longer than 255 characters"));
        }
        if value.contains(['/', '\\']) {
            return Err(refuse(
                "a file name has no `/` or `\\`: it is a base name, not a path",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(refuse("it contains a control character"));
        }
        if value == "." || value == ".." {
            return Err(refuse("`.` and `..` name directories"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl JsonSchema for FileName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": FileName::MAX_LEN,
            "pattern": FILE_NAME_PATTERN,
            "description": "A base file name: no `/` or `\\`, no control character, not `.` or `..`"
        })
    }
}

impl TryFrom<String> for FileName {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<FileName> for String {
    fn from(n: FileName) -> Self {
        n.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_are_checked_and_written_in_lower_case() {
        assert_eq!(MimeType::parse("text/CSV").unwrap().as_str(), "text/csv");
        assert_eq!(
            MimeType::parse("Text/Plain ;Charset=UTF-8").unwrap().as_str(),
            "text/plain;charset=UTF-8"
        );
        assert_eq!(
            MimeType::parse("application/vnd.apache.parquet")
                .unwrap()
                .essence(),
            "application/vnd.apache.parquet"
        );
        for bad in [
            "",
            "text",
            "text/",
            "/csv",
            "text/csv/x",
            "text/csv;",
            "text/csv; charset",
            "text/csv; charset=\"utf-8\"",
            "te xt/csv",
            ".text/csv",
            "text/csv\n",
        ] {
            assert!(MimeType::parse(bad).is_err(), "{bad:?}");
        }
        assert!(MimeType::parse(&format!("a/{}", "b".repeat(254))).is_err());
    }

    #[test]
    fn a_file_name_is_a_base_name() {
        for good in ["cohort.csv", "données.csv", "a..b", ".hidden", "x"] {
            assert_eq!(FileName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc/passwd",
            "a\\b",
            "a\u{0}b",
            "tab\there",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FileName::parse(&"é".repeat(255)).is_ok());
        assert!(FileName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn the_patterns_take_exactly_what_parsing_takes() {
        let mime = regex::Regex::new(MIME_TYPE_PATTERN).unwrap();
        for text in [
            "text/csv",
            "Text/Plain ;Charset=UTF-8",
            "application/vnd.apache.parquet",
            "text/csv;",
            "text/csv; charset",
            "text/csv; charset=\"utf-8\"",
            "te xt/csv",
            ".text/csv",
            "text",
        ] {
            assert_eq!(mime.is_match(text), MimeType::parse(text).is_ok(), "{text:?}");
        }
        let name = regex::Regex::new(FILE_NAME_PATTERN).unwrap();
        for text in [
            "cohort.csv",
            "données.csv",
            "a/b",
            "a\\b",
            "a\u{0}b",
            "a\u{85}b",
            "",
        ] {
            assert_eq!(name.is_match(text), FileName::parse(text).is_ok(), "{text:?}");
        }
        // The two names the pattern lets through and the parser refuses, as documented.
        for text in [".", ".."] {
            assert!(name.is_match(text) && FileName::parse(text).is_err());
        }
    }
}
