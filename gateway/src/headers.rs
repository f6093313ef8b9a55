//! Request and response headers of the API: preconditions (`If-Match`), idempotency keys, correlation,
//! read-your-writes (`Prism-Min-Sequence`), and the headers every command response carries.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use utoipa::IntoParams;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::auth::REQUEST_ID_MAX;
use crate::problem::Problem;

/// Stream sequence of a command's commit (response) — pass it back as `min_sequence` to read the write.
pub const PRISM_SEQUENCE: HeaderName = HeaderName::from_static("prism-sequence");
/// Stream sequence a query must wait for before reading (request).
pub const PRISM_MIN_SEQUENCE: HeaderName = HeaderName::from_static("prism-min-sequence");
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a command response that repeats the first result of an idempotency key.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Longest accepted `Idempotency-Key`; UUIDs and similar tokens fit with room to spare.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// The `ETag` of an aggregate version: a strong entity tag holding the version number.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are a valid header value")
}

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version (the domain itself rejects commands to aggregates that do not exist).
    Any,
    /// The aggregate must be at exactly this version.
    Version(u64),
    /// Only tags that can never match one of ours (weak or non-numeric): the precondition fails.
    Never,
}

impl IfMatch {
    /// Parses an `If-Match` value (RFC 9110 §13.1.1). Weak tags never match, because `If-Match` uses
    /// the strong comparison. A list naming several versions (strong tags of digits) is refused: the
    /// event store checks one expected version atomically, and no client has a reason to send more
    /// than its last `ETag`. [`IF_MATCH_PATTERN`] says the same.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(Self::Any);
        }
        let mut versions = Vec::new();
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (weak, quoted) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            let opaque = quoted
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .filter(|t| {
                    t.bytes()
                        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
                })
                .ok_or_else(|| format!("`{tag}` is not an entity tag; send the ETag as given, e.g. \"3\""))?;
            if weak {
                continue;
            }
            // A version too large to be one of ours still names a version: it never matches.
            if !opaque.is_empty() && opaque.bytes().all(|b| b.is_ascii_digit()) {
                versions.push(opaque.parse::<u64>().ok());
            }
        }
        match versions.as_slice() {
            [] if value.split(',').all(|t| t.trim().is_empty()) => Err("If-Match is empty".into()),
            [] | [None] => Ok(Self::Never),
            [Some(version)] => Ok(Self::Version(*version)),
            _ => Err("If-Match may name only one version".into()),
        }
    }

    /// The version to pass to the repository as `expected_version`.
    pub fn expected_version(self) -> Option<u64> {
        match self {
            Self::Version(v) => Some(v),
            Self::Any | Self::Never => None,
        }
    }
}

/// Checks an `Idempotency-Key`: visible ASCII only, so it is safe in logs and as a key derivation input.
pub fn parse_idempotency_key(value: &HeaderValue) -> Result<String, String> {
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| format!("Idempotency-Key must be 1–{IDEMPOTENCY_KEY_MAX} visible ASCII characters"))?;
    Ok(key.to_owned())
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). An invalid one is dropped, as Trace Context
/// asks, rather than failing the request.
pub fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
        && (parts[0] != "00" || parts.len() == 4)
}

/// The headers a command reads, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandHeaders {
    pub idempotency_key: Option<String>,
    pub if_match: Option<IfMatch>,
}

impl CommandHeaders {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Problem> {
        let idempotency_key = headers
            .get(IDEMPOTENCY_KEY)
            .map(parse_idempotency_key)
            .transpose()
            .map_err(Problem::bad_request)?;
        let if_match = headers
            .get(header::IF_MATCH)
            .map(|v| {
                v.to_str()
                    .map_err(|_| "If-Match is not visible ASCII".to_owned())
                    .and_then(IfMatch::parse)
            })
            .transpose()
            .map_err(Problem::bad_request)?;
        Ok(Self {
            idempotency_key,
            if_match,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CommandHeaders {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Self::from_headers(&parts.headers)
    }
}

/// The stream sequence a query waits for: the larger of `?min_sequence=` and `Prism-Min-Sequence`.
pub fn min_sequence(headers: &HeaderMap, query: Option<u64>) -> Result<Option<u64>, Problem> {
    let header = headers
        .get(PRISM_MIN_SEQUENCE)
        .map(|v| {
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Problem::bad_request("Prism-Min-Sequence must be a stream sequence number"))
        })
        .transpose()?;
    Ok(header.max(query))
}

/// Headers of a command (documentation only; [`CommandHeaders`] parses them).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct CommandHeaderParams {
    #[param(rename = "Idempotency-Key", schema_with = idempotency_key_schema)]
    idempotency_key: Option<String>,
    #[param(rename = "X-Request-Id", schema_with = request_id_schema)]
    request_id: Option<String>,
    #[param(rename = "traceparent", schema_with = traceparent_schema)]
    traceparent: Option<String>,
}

/// Headers of a conditional command (documentation only).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConditionalHeaderParams {
    #[param(rename = "If-Match", schema_with = if_match_schema)]
    if_match: Option<String>,
}

/// Headers of a query (documentation only).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct QueryHeaderParams {
    #[param(rename = "Prism-Min-Sequence", schema_with = min_sequence_schema)]
    min_sequence: Option<u64>,
}

/// What [`parse_idempotency_key`] accepts.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[!-~]{1,255}$";

/// What [`IfMatch::parse`] accepts: `*`, or a comma-separated list of entity tags (weak or strong) of
/// which at most one is a strong tag of digits (a version). Empty list elements are allowed; a comma
/// inside a tag is not (the list is split at every comma).
pub const IF_MATCH_PATTERN: &str = concat!(
    r#"^(?:[ \t]*\*[ \t]*|"#,
    // Elements that name no version, or nothing at all, before…
    r#"(?:[ \t]*(?:W/"[!#-+\x2D-~]*"|"(?:[!#-+\x2D-~]*[!#-+\x2D-/:-~][!#-+\x2D-~]*)?")?[ \t]*,)*"#,
    // …one element that is there, a version or not…
    r#"[ \t]*(?:"[0-9]+"|W/"[!#-+\x2D-~]*"|"(?:[!#-+\x2D-~]*[!#-+\x2D-/:-~][!#-+\x2D-~]*)?")[ \t]*"#,
    // …and after it.
    r#"(?:,[ \t]*(?:W/"[!#-+\x2D-~]*"|"(?:[!#-+\x2D-~]*[!#-+\x2D-/:-~][!#-+\x2D-~]*)?")?[ \t]*)*)$"#,
);

fn string_schema(pattern: Option<&str>, description: String) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .description(Some(description))
        .into()
}

fn idempotency_key_schema() -> Schema {
    string_schema(
        Some(IDEMPOTENCY_KEY_PATTERN),
        format!(
            "Makes the command safe to retry: a retry with the same key and body answers the first result \
             (and, for creates, names the same new resource); the same key with another body is refused \
             (422). 1–{IDEMPOTENCY_KEY_MAX} visible ASCII characters; anything else is refused (400)."
        ),
    )
}

fn request_id_schema() -> Schema {
    string_schema(
        None,
        format!(
            "Correlates the events this command records with the caller's own request id: 1–{REQUEST_ID_MAX} \
             visible ASCII characters. Any other value is ignored, never truncated."
        ),
    )
}

fn traceparent_schema() -> Schema {
    string_schema(
        None,
        "W3C Trace Context (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), recorded on the \
         events. A value that is not one is ignored, as Trace Context asks."
            .into(),
    )
}

fn if_match_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(IF_MATCH_PATTERN))
        .description(Some(
            "Applies the change only if the resource is still at this version (its `ETag`, e.g. `\"3\"`), \
             else 412; `*` applies it to any version. Weak tags and tags that are no version of ours never \
             match (412). A list may name at most one version; a malformed value is refused (400).",
        ))
        .examples(["\"3\""])
        .into()
}

fn min_sequence_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .description(Some(
            "Same as the `min_sequence` query parameter (the larger of the two applies); decimal digits.",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_one_strong_version() {
        assert_eq!(IfMatch::parse("\"3\""), Ok(IfMatch::Version(3)));
        assert_eq!(IfMatch::parse("  \"0\" "), Ok(IfMatch::Version(0)));
        assert_eq!(IfMatch::parse("*"), Ok(IfMatch::Any));
        assert_eq!(IfMatch::parse("W/\"3\", \"4\""), Ok(IfMatch::Version(4)));
        assert_eq!(IfMatch::Version(7).expected_version(), Some(7));
        assert_eq!(IfMatch::Any.expected_version(), None);
    }

    #[test]
    fn if_match_tags_that_cannot_match_fail_the_precondition() {
        assert_eq!(IfMatch::parse("W/\"3\""), Ok(IfMatch::Never));
        assert_eq!(IfMatch::parse("\"99999999999999999999\""), Ok(IfMatch::Never));
        assert_eq!(IfMatch::parse("\"abc\""), Ok(IfMatch::Never));
        assert_eq!(IfMatch::parse("\"-1\""), Ok(IfMatch::Never));
    }

    #[test]
    fn if_match_syntax_errors_are_reported() {
        assert!(IfMatch::parse("3").is_err());
        assert!(IfMatch::parse("\"3").is_err());
        assert!(IfMatch::parse("\"a b\"").is_err());
        assert!(IfMatch::parse("").is_err());
        assert!(IfMatch::parse(" , ").is_err());
        assert!(IfMatch::parse("\"1\", \"2\"").is_err());
    }

    #[test]
    fn etags_round_trip_through_if_match() {
        let tag = etag(42);
        assert_eq!(tag, "\"42\"");
        assert_eq!(IfMatch::parse(tag.to_str().unwrap()), Ok(IfMatch::Version(42)));
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        let ok = HeaderValue::from_static("order-7f3a");
        assert_eq!(parse_idempotency_key(&ok).unwrap(), "order-7f3a");
        assert!(parse_idempotency_key(&HeaderValue::from_static("")).is_err());
        assert!(parse_idempotency_key(&HeaderValue::from_static("a b")).is_err());
        let long = HeaderValue::from_str(&"k".repeat(256)).unwrap();
        assert!(parse_idempotency_key(&long).is_err());
    }

    /// Header values as HTTP delivers them: without white space around them.
    fn header_values(alphabet: &str, exhaustive: usize, random: usize, max_len: usize) -> Vec<String> {
        let alphabet: Vec<char> = alphabet.chars().collect();
        crate::strings::over(&alphabet, exhaustive, random, max_len)
            .into_iter()
            .filter(|s| s.trim() == s)
            .collect()
    }

    #[test]
    fn the_idempotency_key_pattern_is_the_rule() {
        let pattern = regex::Regex::new(IDEMPOTENCY_KEY_PATTERN).unwrap();
        let mut samples = header_values("a Z~!\t\"", 3, 1000, 8);
        samples.extend(["k".repeat(255), "k".repeat(256)]);
        for s in samples {
            let value = HeaderValue::from_str(&s).unwrap();
            assert_eq!(
                pattern.is_match(&s),
                parse_idempotency_key(&value).is_ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_if_match_pattern_is_the_rule() {
        let pattern = regex::Regex::new(IF_MATCH_PATTERN).unwrap();
        let mut samples = header_values("\"W/*, \t0a!#", 4, 50_000, 14);
        samples.extend(
            [
                "\"1\"",
                "\"99999999999999999999999\"",
                "\"1\", \"99999999999999999999999\"",
                "W/\"1\", \"2\"",
                "\"a\", ,\"2\",",
                "\"1\",\"2\"",
                "*",
                " * ",
                "*,\"1\"",
            ]
            .map(String::from),
        );
        for s in samples {
            assert_eq!(pattern.is_match(&s), IfMatch::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn command_headers_parse_and_drop_bad_optional_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("k1"));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"2\""));
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("req-1"));
        headers.insert(TRACEPARENT, HeaderValue::from_static("not-a-trace"));
        let parsed = CommandHeaders::from_headers(&headers).unwrap();
        assert_eq!(parsed.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(parsed.if_match, Some(IfMatch::Version(2)));
        assert_eq!(crate::auth::request_id(&headers).as_deref(), Some("req-1"));
        assert_eq!(crate::auth::traceparent(&headers), None);

        headers.insert(header::IF_MATCH, HeaderValue::from_static("2"));
        assert_eq!(CommandHeaders::from_headers(&headers).unwrap_err().status, 400);
    }

    #[test]
    fn traceparent_is_checked() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
        assert!(!valid_traceparent(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
    }

    #[test]
    fn min_sequence_takes_the_larger_of_query_and_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(min_sequence(&headers, None).unwrap(), None);
        assert_eq!(min_sequence(&headers, Some(4)).unwrap(), Some(4));
        headers.insert(PRISM_MIN_SEQUENCE, HeaderValue::from_static("9"));
        assert_eq!(min_sequence(&headers, Some(4)).unwrap(), Some(9));
        for bad in ["x", "+9", "-1", "1e3", ""] {
            headers.insert(PRISM_MIN_SEQUENCE, HeaderValue::from_static(bad));
            assert_eq!(min_sequence(&headers, None).unwrap_err().status, 400, "{bad}");
        }
    }
}
