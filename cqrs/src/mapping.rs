//! How a cqrs-es event is written as a CloudEvent and read back: the `type` attribute, the `data`
//! member, and the CloudEvents attributes taken from cqrs-es metadata. Pure functions, no I/O.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// Metadata keys that are also copied into the CloudEvents attribute of the same meaning.
pub const ACTOR_KEY: &str = "actor";
pub const CORRELATION_ID_KEY: &str = "correlation_id";
pub const CAUSATION_ID_KEY: &str = "causation_id";
pub const TRACEPARENT_KEY: &str = "traceparent";

const TYPE_PREFIX: &str = "io.prism.";

/// Checks that `value` is one NATS subject token and one segment of the CloudEvents type.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), Error> {
    if is_token(value) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

pub(crate) fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The major version at the start of a cqrs-es `event_version()`: `1` for `1`, `1.0` or `1.2.3`.
fn major_version(version: &str) -> Result<u32, Error> {
    let major = version.split('.').next().unwrap_or_default();
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidVersion(version.to_owned()));
    }
    major
        .parse()
        .map_err(|_| Error::InvalidVersion(version.to_owned()))
}

/// How one cqrs-es event type is written: the CloudEvents `type`, and the full `event_version()`
/// when `v<N>` alone would not give it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeName {
    pub ce_type: String,
    pub full_version: Option<String>,
}

/// `io.prism.<aggregate type>.<event type>.v<major>` for cqrs-es's `Aggregate::TYPE`,
/// `event_type()` and `event_version()`.
pub(crate) fn type_name(
    aggregate_type: &str,
    event_type: &str,
    event_version: &str,
) -> Result<TypeName, Error> {
    check_name("aggregate type", aggregate_type)?;
    check_name("event type", event_type)?;
    let major = major_version(event_version)?;
    let full_version = (major.to_string() != event_version).then(|| event_version.to_owned());
    Ok(TypeName {
        ce_type: format!("{TYPE_PREFIX}{aggregate_type}.{event_type}.v{major}"),
        full_version,
    })
}

/// `(aggregate type, event type, major version)` of `io.prism.<aggregate>.<event>.v<N>`.
pub(crate) fn parse_type(ce_type: &str) -> Result<(&str, &str, u32), Error> {
    let bad = || Error::InvalidType(ce_type.to_owned());
    let rest = ce_type.strip_prefix(TYPE_PREFIX).ok_or_else(bad)?;
    let (rest, version) = rest.rsplit_once(".v").ok_or_else(bad)?;
    let (aggregate, event) = rest.split_once('.').ok_or_else(bad)?;
    if !is_token(aggregate) || !is_token(event) || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let version = version.parse().map_err(|_| bad())?;
    Ok((aggregate, event, version))
}

/// The CloudEvents `data` of one event: the event as cqrs-es serialises it, the commit's metadata
/// (left out when empty), and the full `event_version()` when the type's `v<N>` does not carry it
/// exactly (see [`data`]).
#[derive(Debug, Deserialize)]
pub(crate) struct Data {
    pub payload: Value,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    #[serde(default, rename = "eventversion")]
    pub event_version: Option<String>,
}

/// Writes [`Data`]: `{"payload": …, "metadata": {…}, "eventversion": "…"}`.
pub(crate) fn data(
    payload: Value,
    metadata: &HashMap<String, String>,
    event_version: Option<String>,
) -> Value {
    let mut data = serde_json::Map::with_capacity(3);
    data.insert("payload".into(), payload);
    if !metadata.is_empty() {
        let metadata = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        data.insert("metadata".into(), Value::Object(metadata));
    }
    if let Some(version) = event_version {
        data.insert("eventversion".into(), Value::String(version));
    }
    Value::Object(data)
}

/// The CloudEvents attributes Prism's envelope has for who and why, taken from the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub actor: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
}

impl Attributes {
    pub(crate) fn from_metadata(metadata: &HashMap<String, String>, default_actor: &str) -> Self {
        let get = |key: &str| metadata.get(key).filter(|v| !v.is_empty()).cloned();
        Self {
            actor: get(ACTOR_KEY).unwrap_or_else(|| default_actor.to_owned()),
            correlation_id: get(CORRELATION_ID_KEY),
            causation_id: get(CAUSATION_ID_KEY),
            // It also travels as a NATS header, so only a well-formed W3C value is taken.
            traceparent: get(TRACEPARENT_KEY).filter(|v| is_traceparent(v)),
        }
    }
}

/// `version-traceid-parentid-flags`, lowercase hex: `00-<32>-<16>-<2>`.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts.as_slice(), [v, t, p, f]
        if v.len() == 2 && t.len() == 32 && p.len() == 16 && f.len() == 2 && parts.iter().all(|s| hex(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_version_is_the_type_version() {
        let name = type_name("account", "Deposited", "3").unwrap();
        assert_eq!(name.ce_type, "io.prism.account.Deposited.v3");
        assert_eq!(name.full_version, None);
        assert_eq!(parse_type(&name.ce_type).unwrap(), ("account", "Deposited", 3));
    }

    #[test]
    fn a_semantic_version_keeps_its_major_in_the_type_and_the_rest_in_data() {
        let name = type_name("account", "Deposited", "1.0").unwrap();
        assert_eq!(name.ce_type, "io.prism.account.Deposited.v1");
        assert_eq!(name.full_version.as_deref(), Some("1.0"));
        let name = type_name("account", "Deposited", "2.3.1").unwrap();
        assert_eq!(name.ce_type, "io.prism.account.Deposited.v2");
        assert_eq!(name.full_version.as_deref(), Some("2.3.1"));
    }

    #[test]
    fn names_outside_the_type_grammar_are_refused() {
        for (aggregate, event) in [
            ("bank.account", "Deposited"),
            ("account", "funds.deposited"),
            ("", "Deposited"),
            ("account", ""),
            ("account", "Déposé"),
            ("acc*", "Deposited"),
            ("account", "a b"),
        ] {
            assert!(
                matches!(type_name(aggregate, event, "1"), Err(Error::InvalidName { .. })),
                "{aggregate:?} {event:?}"
            );
        }
        for version in ["", "v1", "one", ".1", "1x", "99999999999"] {
            assert!(
                matches!(
                    type_name("account", "Deposited", version),
                    Err(Error::InvalidVersion(_))
                ),
                "{version:?}"
            );
        }
    }

    #[test]
    fn foreign_types_are_not_parsed() {
        for ty in [
            "com.example.account.Deposited.v1",
            "io.prism.account.v1",
            "io.prism.account.Deposited",
            "io.prism.account.Deposited.vX",
            "io.prism.account.funds.deposited.v1",
        ] {
            assert!(parse_type(ty).is_err(), "{ty}");
        }
    }

    #[test]
    fn data_reads_back_what_was_written() {
        let metadata = HashMap::from([("user".to_owned(), "ünïcødé \"quoted\"\n".to_owned())]);
        let payload = serde_json::json!({"Deposited": {"amount": 5}});
        let written = data(payload.clone(), &metadata, Some("1.0".into()));
        let read: Data = serde_json::from_value(written).unwrap();
        assert_eq!(read.payload, payload);
        assert_eq!(read.metadata, metadata);
        assert_eq!(read.event_version.as_deref(), Some("1.0"));

        let written = data(payload.clone(), &HashMap::new(), None);
        assert_eq!(written, serde_json::json!({"payload": payload}));
    }

    #[test]
    fn well_known_metadata_fills_the_audit_attributes() {
        let metadata = HashMap::from([
            ("actor".to_owned(), "alice".to_owned()),
            ("correlation_id".to_owned(), "c-1".to_owned()),
            ("causation_id".to_owned(), "e-9".to_owned()),
            (
                "traceparent".to_owned(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            ),
        ]);
        let attributes = Attributes::from_metadata(&metadata, "service");
        assert_eq!(attributes.actor, "alice");
        assert_eq!(attributes.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(attributes.causation_id.as_deref(), Some("e-9"));
        assert!(attributes.traceparent.is_some());

        let attributes = Attributes::from_metadata(&HashMap::new(), "service");
        assert_eq!(
            attributes,
            Attributes {
                actor: "service".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_malformed_traceparent_stays_in_metadata_only() {
        for bad in [
            "00-abc",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX: y",
        ] {
            let metadata = HashMap::from([("traceparent".to_owned(), bad.to_owned())]);
            assert_eq!(Attributes::from_metadata(&metadata, "s").traceparent, None);
        }
    }
}
