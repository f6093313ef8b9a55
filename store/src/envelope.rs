//! The CloudEvents 1.0 envelope every stored event wears, and the per-aggregate SHA-256 hash chain.

use chrono::{DateTime, Utc};
use prism_domain::{DomainEvent, UpcastError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `prevhash` of an aggregate's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the caller knows about a command besides its content; copied onto every event of the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub workspace: Option<String>,
    pub actor: String,
    /// Ties every event caused, directly or not, by one request together. Defaults to the first event id.
    pub correlation_id: Option<String>,
    /// The id of the event (or request) that caused this command.
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
}

/// A CloudEvents 1.0 record (JSON format) with Prism's extension attributes. Attribute names follow the
/// CloudEvents rule of lowercase letters and digits only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    pub aggregatetype: String,
    pub aggregateid: String,
    pub aggregateversion: u64,
    pub actor: String,
    pub correlationid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub prevhash: String,
    pub data: serde_json::Value,
    /// SHA-256 of this envelope serialised without `hash`; see [`EventEnvelope::compute_hash`]. Kept
    /// last, so the sealed JSON is the hashed JSON with this one member appended.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event type `{0}` is not of the form io.prism.<aggregate>.<event>.v<N>")]
    Type(String),
    #[error("event is a `{found}`, expected a `{expected}`")]
    WrongAggregate { expected: String, found: String },
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("event payload does not match its type: {0}")]
    Payload(#[from] serde_json::Error),
}

/// A domain event's payload as the log records it (`data`): the content of its enum variant, without
/// the variant's name, which the CloudEvents type carries.
pub fn event_data<E: DomainEvent>(event: &E) -> Result<serde_json::Value, serde_json::Error> {
    Ok(match serde_json::to_value(event)? {
        serde_json::Value::Object(mut tagged) => tagged.remove("data").unwrap_or_default(),
        _ => serde_json::Value::Null,
    })
}

impl EventEnvelope {
    /// Builds the envelope of one domain event (without its hash; [`EventEnvelope::seal`] adds it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new<E: DomainEvent>(
        event: &E,
        aggregate_type: &str,
        aggregate_id: &str,
        version: u64,
        time: DateTime<Utc>,
        meta: &Metadata,
        correlation_id: &str,
    ) -> Result<Self, serde_json::Error> {
        let data = event_data(event)?;
        let id = uuid::Uuid::now_v7().to_string();
        Ok(Self {
            specversion: "1.0".into(),
            source: match &meta.workspace {
                Some(ws) => format!("/workspaces/{ws}"),
                None => "/prism".into(),
            },
            ty: prism_domain::schema::event_type(aggregate_type, event.name(), event.version()),
            subject: format!("{aggregate_type}/{aggregate_id}"),
            time,
            datacontenttype: "application/json".into(),
            workspace: meta.workspace.clone(),
            aggregatetype: aggregate_type.into(),
            aggregateid: aggregate_id.into(),
            aggregateversion: version,
            actor: meta.actor.clone(),
            correlationid: correlation_id.into(),
            causationid: meta.causation_id.clone(),
            traceparent: meta.traceparent.clone(),
            prevhash: String::new(),
            hash: String::new(),
            data,
            id,
        })
    }

    /// The chain hash: SHA-256 over the JSON of the envelope with `hash` left out. `data` is a
    /// `serde_json::Value`, whose object keys serialise in a stable order, so the same envelope read back
    /// from the store hashes to the same value.
    pub fn compute_hash(&self) -> String {
        if self.hash.is_empty() {
            return self.digest();
        }
        let mut unsealed = self.clone();
        unsealed.hash.clear();
        unsealed.digest()
    }

    /// SHA-256 of the envelope as it serialises now (`hash` is skipped while empty).
    fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("an envelope always serialises");
        hex::encode(Sha256::digest(bytes))
    }

    /// Sets `prevhash` and `hash`.
    #[cfg(test)]
    pub(crate) fn seal(&mut self, prevhash: &str) {
        self.seal_into(prevhash, &mut Vec::new());
    }

    /// Sets `prevhash` and `hash`, and appends the sealed envelope's JSON to `out`. The write path
    /// serialises each envelope once: the bytes that are hashed, plus the `hash` member, are the bytes
    /// that are stored (the same bytes `serde_json` would give for the sealed envelope).
    pub(crate) fn seal_into(&mut self, prevhash: &str, out: &mut Vec<u8>) {
        self.prevhash = prevhash.to_owned();
        self.hash.clear();
        let start = out.len();
        serde_json::to_writer(&mut *out, self).expect("an envelope always serialises");
        self.hash = hex::encode(Sha256::digest(&out[start..]));
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(self.hash.as_bytes());
        out.extend_from_slice(b"\"}");
    }

    /// `(aggregate, event, version)` from `io.prism.<aggregate>.<event>.v<N>`.
    pub fn type_parts(&self) -> Result<(&str, &str, u32), DecodeError> {
        let bad = || DecodeError::Type(self.ty.clone());
        let rest = self.ty.strip_prefix("io.prism.").ok_or_else(bad)?;
        let (rest, version) = rest.rsplit_once(".v").ok_or_else(bad)?;
        let (aggregate, event) = rest.split_once('.').ok_or_else(bad)?;
        let version = version.parse().map_err(|_| bad())?;
        Ok((aggregate, event, version))
    }

    /// The typed domain event, upcast to the current payload version.
    pub fn decode<E: DomainEvent>(&self, aggregate_type: &str) -> Result<E, DecodeError> {
        let (aggregate, event, version) = self.type_parts()?;
        if aggregate != aggregate_type {
            return Err(DecodeError::WrongAggregate {
                expected: aggregate_type.into(),
                found: aggregate.into(),
            });
        }
        let data = E::upcast(event, version, self.data.clone())?;
        Ok(serde_json::from_value(
            serde_json::json!({ "event": event, "data": data }),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_domain::workspace::{WorkspaceArchived, WorkspaceEvent};

    fn envelope() -> EventEnvelope {
        let event = WorkspaceEvent::Archived(WorkspaceArchived {
            archived_by: prism_domain::Actor("alice".into()),
            archived_at: prism_domain::testing::fixed_time(),
        });
        let meta = Metadata {
            actor: "alice".into(),
            ..Default::default()
        };
        let mut e = EventEnvelope::new(&event, "workspace", "w1", 1, event_time(), &meta, "c1").unwrap();
        e.seal(GENESIS_HASH);
        e
    }

    fn event_time() -> DateTime<Utc> {
        prism_domain::testing::fixed_time()
    }

    #[test]
    fn the_hash_survives_a_round_trip_through_json() {
        let e = envelope();
        let back: EventEnvelope = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back.compute_hash(), e.hash);
        assert_eq!(back.ty, "io.prism.workspace.archived.v1");
        let decoded: WorkspaceEvent = back.decode("workspace").unwrap();
        assert!(matches!(decoded, WorkspaceEvent::Archived(_)));
    }

    #[test]
    fn the_stored_bytes_are_what_serde_gives_for_the_sealed_envelope() {
        let mut e = envelope();
        let mut out = Vec::new();
        e.seal_into(GENESIS_HASH, &mut out);
        assert_eq!(out, serde_json::to_vec(&e).unwrap());
        assert_eq!(e.compute_hash(), e.hash);
    }

    #[test]
    fn any_change_breaks_the_hash() {
        let mut e = envelope();
        e.data["archived_by"] = "mallory".into();
        assert_ne!(e.compute_hash(), e.hash);
        let mut e = envelope();
        e.prevhash = "1".repeat(64);
        assert_ne!(e.compute_hash(), e.hash);
    }

    #[test]
    fn an_event_of_another_aggregate_is_not_decoded() {
        assert!(matches!(
            envelope().decode::<WorkspaceEvent>("computation"),
            Err(DecodeError::WrongAggregate { .. })
        ));
    }
}
