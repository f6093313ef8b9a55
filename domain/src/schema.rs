//! JSON Schemas of every event payload, generated from the Rust types. `schemas/` at the repository
//! root holds the checked-in copies; a test fails when they drift from the types.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use crate::aggregate::Aggregate;
use crate::computation::{self, Computation};
use crate::reaction::{self, Reaction};
use crate::workspace::{self, Workspace};

/// The CloudEvents `type` of an event: `io.prism.<aggregate>.<event>.v<version>`.
pub fn event_type(aggregate: &str, event: &str, version: u32) -> String {
    format!("io.prism.{aggregate}.{event}.v{version}")
}

#[derive(Debug, Clone)]
pub struct EventSchema {
    pub aggregate: &'static str,
    pub event: &'static str,
    pub event_type: String,
    pub schema: Schema,
}

fn payload<T: JsonSchema>(aggregate: &'static str, event: &'static str) -> EventSchema {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    let event_type = event_type(aggregate, event, 1);
    schema.insert(
        "$id".into(),
        format!("https://prism.dev/schemas/{event_type}.json").into(),
    );
    EventSchema {
        aggregate,
        event,
        event_type,
        schema,
    }
}

/// Every event payload schema, one per event type. [`event_names`] guards against a variant missing here.
pub fn all() -> Vec<EventSchema> {
    vec![
        payload::<workspace::WorkspaceCreated>(Workspace::TYPE, "created"),
        payload::<workspace::WorkspaceUpdated>(Workspace::TYPE, "updated"),
        payload::<workspace::WorkspaceArchived>(Workspace::TYPE, "archived"),
        payload::<computation::ComputationCreated>(Computation::TYPE, "created"),
        payload::<computation::ComputationUpdated>(Computation::TYPE, "updated"),
        payload::<computation::ComputationArchived>(Computation::TYPE, "archived"),
        payload::<reaction::ReactionFailed>(Reaction::TYPE, "failed"),
    ]
}

/// The event names an aggregate's event enum declares, read from the enum's own schema.
pub fn event_names<A: Aggregate>() -> Vec<String>
where
    A::Event: JsonSchema,
{
    let schema = serde_json::to_value(schemars::schema_for!(A::Event)).expect("schema serialises");
    let variants = schema
        .get("oneOf")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    variants
        .iter()
        .filter_map(|v| {
            v.pointer("/properties/event/const")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(aggregate: &str) -> Vec<String> {
        all()
            .into_iter()
            .filter(|s| s.aggregate == aggregate)
            .map(|s| s.event.to_owned())
            .collect()
    }

    #[test]
    fn every_event_variant_has_a_schema() {
        assert_eq!(event_names::<Workspace>(), listed(Workspace::TYPE));
        assert_eq!(event_names::<Computation>(), listed(Computation::TYPE));
        assert_eq!(event_names::<Reaction>(), listed(Reaction::TYPE));
    }
}
