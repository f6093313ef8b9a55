use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;

/// The names under which the authority's private keys are sealed in the key store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorityKeys {
    pub root: String,
    pub intermediate: String,
    pub responder: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum AuthorityEvent {
    Established(AuthorityEstablished),
    ResponderReplaced(ResponderReplaced),
}

/// The platform's certificate authority was created: every certificate it issues chains to `root`
/// through `intermediate`; `responder` signs its OCSP answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorityEstablished {
    pub root: String,
    pub intermediate: String,
    pub responder: String,
    pub keys: AuthorityKeys,
    pub established_at: DateTime<Utc>,
}

/// A new OCSP responder certificate replaced one close to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponderReplaced {
    pub responder: String,
    pub key: String,
    pub replaced_at: DateTime<Utc>,
}

impl DomainEvent for AuthorityEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Established(_) => "established",
            Self::ResponderReplaced(_) => "responder_replaced",
        }
    }
}
