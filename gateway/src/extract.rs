//! Extractors whose rejections are problem documents, replacing axum's plain-text ones.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::problem::{FieldProblem, Problem, ProblemKind};

/// A JSON request body.
///
/// Reads the body itself rather than wrapping `axum::Json`, to classify serde's errors the way this API
/// documents them: syntax errors and unknown fields are 400 (the client sent something this API does
/// not speak), wrong types and missing fields are 422 with a JSON Pointer to the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                ProblemKind::UnsupportedMediaType,
                "send the request body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json_object(&bytes).map(Self)
    }
}

/// `application/json`, or any `application/*+json` (e.g. `application/merge-patch+json` for PATCH).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn bytes_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(ProblemKind::PayloadTooLarge, rejection.body_text())
    } else {
        Problem::bad_request(rejection.body_text())
    }
}

/// A request body, which this API always defines as a JSON object. serde would also read a struct from
/// a JSON array of its fields (`[]` for a struct whose fields are all optional), which no client
/// means: anything but an object is refused before it is read.
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => parse_json(bytes),
        Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => Err(Problem::new(
            ProblemKind::Validation,
            "the request body must be a JSON object",
        )
        .with_errors(vec![FieldProblem {
            pointer: String::new(),
            detail: "expected a JSON object".into(),
        }])),
        Some(_) => parse_json(bytes),
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_problem)?;
    // `deserialize` stops after one value; anything but whitespace after it is malformed JSON.
    deserializer
        .end()
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Reads `T` from a JSON document already parsed, after writing every whole number given as a
/// float (`8.0`) as the integer it is: JSON Schema counts `8.0` as the integer 8, so a client may send
/// it, and a type read with serde would refuse it. Refusals point at the field, as [`parse_json`]'s.
pub fn from_json_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, Problem> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(json_problem)
}

fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|f| number.is_f64() && f.fract() == 0.0) {
                // Within ±2^53 a float is the integer exactly; beyond it, leave it to be refused.
                if float.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(float as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

fn json_problem(error: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let pointer = json_pointer(error.path());
    let inner = error.inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Problem::bad_request(format!("malformed JSON: {inner}"))
        }
        Category::Data => {
            let message = inner.to_string();
            let field = FieldProblem {
                pointer,
                detail: message.clone(),
            };
            let kind = if message.starts_with("unknown field") {
                ProblemKind::BadRequest
            } else {
                ProblemKind::Validation
            };
            Problem::new(kind, message).with_errors(vec![field])
        }
    }
}

/// RFC 6901 JSON Pointer of a serde path, e.g. `/participants/0/roles/1`.
pub fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => pointer.push('-'),
        }
    }
    pointer
}

/// Path parameters; a malformed id is a 400 problem.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(path_rejection)
    }
}

fn path_rejection(rejection: PathRejection) -> Problem {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => Problem::bad_request(e.body_text()),
        // Only a route registered with the wrong parameters can get here: a bug, not a bad request.
        other => Problem::internal(&other),
    }
}

/// Query parameters; an unknown or malformed parameter is a 400 problem.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| Problem::bad_request(e.body_text()))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn whole_floats_read_as_integers_and_fractions_are_refused_with_their_pointer() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Floor {
            svn: u8,
        }
        let read: Floor = from_json_value(serde_json::json!({"svn": 242.0})).unwrap();
        assert_eq!(read, Floor { svn: 242 });
        let refused = from_json_value::<Floor>(serde_json::json!({"svn": 2.5})).unwrap_err();
        assert_eq!(refused.errors[0].pointer, "/svn");
    }

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        count: u32,
    }

    #[test]
    fn well_formed_bodies_parse() {
        let body: Body = parse_json(br#"{"name":"a","items":[{"count":1}]} "#).unwrap();
        assert_eq!(body.name, "a");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for input in [&b"{"[..], b"", b"{\"name\": }", b"{\"name\":\"a\"} x"] {
            let problem = parse_json::<Body>(input).unwrap_err();
            assert_eq!(problem.status, 400, "{input:?}");
            assert!(problem.detail.unwrap().starts_with("malformed JSON"));
        }
    }

    #[test]
    fn unknown_fields_are_a_bad_request_with_a_pointer() {
        let problem = parse_json::<Body>(br#"{"name":"a","items":[{"count":1,"extra":2}]}"#).unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.errors[0].pointer, "/items/0/extra");
    }

    #[test]
    fn wrong_types_and_missing_fields_are_unprocessable() {
        let problem = parse_json::<Body>(br#"{"name":"a","items":[{"count":"x"}]}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].pointer, "/items/0/count");
        let problem = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(problem.status, 422);
        assert!(problem.detail.unwrap().contains("missing field `name`"));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct AllOptional {
        #[serde(default)]
        name: Option<String>,
    }

    #[test]
    fn a_body_must_be_an_object_even_where_serde_would_read_an_array() {
        assert!(
            serde_json::from_str::<AllOptional>("[]").is_ok(),
            "serde reads structs from arrays"
        );
        for input in [&b"[]"[..], b" [\"a\"]", b"\"a\"", b"1", b"null", b"true"] {
            let problem = parse_json_object::<AllOptional>(input).unwrap_err();
            assert_eq!(problem.status, 422, "{input:?}");
        }
        assert!(parse_json_object::<AllOptional>(b" {}").is_ok());
        assert_eq!(parse_json_object::<AllOptional>(b"").unwrap_err().status, 400);
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
