//! Which events an endpoint subscribes to: exact CloudEvents types, prefixes ending in `*`, or `*`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::WebhookError;

/// The longest pattern taken; event types are far shorter.
pub const PATTERN_MAX: usize = 200;

/// One entry of an endpoint's `event_types`: an exact type (`io.prism.run.completed.v1`), a prefix
/// ending in `*` (`io.prism.run.*`), or `*` (every event of the workspace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct EventTypePattern(String);

fn is_type_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
}

/// `io.prism.<aggregate>.<event>.v<N>`, as the event store names types.
fn is_exact_type(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("io.prism.") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    let segment = |s: &str| !s.is_empty() && s.bytes().all(|b| is_type_char(b) && b != b'.');
    match parts.as_slice() {
        [aggregate, event, version] => {
            segment(aggregate)
                && segment(event)
                && version.strip_prefix('v').is_some_and(|n| {
                    !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
                })
        }
        _ => false,
    }
}

impl EventTypePattern {
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let bad = || WebhookError::EventType(text.chars().take(PATTERN_MAX).collect());
        if text.len() > PATTERN_MAX {
            return Err(bad());
        }
        let valid = match text.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => prefix.bytes().all(is_type_char),
            None => is_exact_type(text),
        };
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an event of CloudEvents type `event_type` is one this pattern subscribes to.
    pub fn matches(&self, event_type: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => self.0 == event_type,
        }
    }
}

/// Whether any of `patterns` subscribes to `event_type`.
pub fn subscribes(patterns: &[EventTypePattern], event_type: &str) -> bool {
    patterns.iter().any(|p| p.matches(event_type))
}

impl TryFrom<String> for EventTypePattern {
    type Error = WebhookError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EventTypePattern> for String {
    fn from(p: EventTypePattern) -> Self {
        p.0
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
