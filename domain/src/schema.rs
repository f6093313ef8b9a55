//! JSON Schemas of every event payload, generated from the Rust types. `schemas/` at the repository
//! root holds the checked-in copies; the platform's registry test fails when they drift from the types.

use std::collections::BTreeSet;

use schemars::{JsonSchema, Schema, generate::SchemaSettings};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, DomainEvent};

/// The CloudEvents `type` of an event: `io.prism.<aggregate>.<event>.v<version>`.
pub fn event_type(aggregate: &str, event: &str, version: u32) -> String {
    format!("io.prism.{aggregate}.{event}.v{version}")
}

#[derive(Debug, Clone)]
pub struct EventSchema {
    pub aggregate: &'static str,
    pub event: String,
    pub event_type: String,
    pub schema: Schema,
}

/// The payload schema of every event of aggregate `A`, read from its event enum's own schema (each
/// variant is `{"event": "<name>", "data": <payload>}`), so a new variant can never lack one.
pub fn of<A: Aggregate>() -> Vec<EventSchema>
where
    A::Event: JsonSchema,
{
    let generator = SchemaSettings::draft2020_12().into_generator();
    let root = serde_json::to_value(generator.into_root_schema_for::<A::Event>()).expect("schemas serialise");
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let variants = root
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants
        .iter()
        .filter_map(|variant| {
            let name = variant.pointer("/properties/event/const")?.as_str()?.to_owned();
            let data = variant.pointer("/properties/data")?;
            let payload = resolve(data, &defs);
            let event_type = event_type(A::TYPE, &name, A::Event::version_of(&name));
            let mut schema = Map::new();
            schema.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
            schema.insert(
                "$id".into(),
                format!("https://prism.dev/schemas/{event_type}.json").into(),
            );
            if let Some(title) = data
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
            {
                schema.insert("title".into(), title.into());
            }
            if let Value::Object(body) = payload {
                schema.extend(body);
            }
            let used = referenced(&Value::Object(schema.clone()), &defs);
            if !used.is_empty() {
                let kept: Map<String, Value> = defs
                    .iter()
                    .filter(|(name, _)| used.contains(*name))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                schema.insert("$defs".into(), Value::Object(kept));
            }
            Some(EventSchema {
                aggregate: A::TYPE,
                event: name,
                event_type,
                schema: Schema::try_from(Value::Object(schema)).expect("an object is a schema"),
            })
        })
        .collect()
}

/// The schema `data` refers to (a `$ref` into `defs`), or `data` itself.
fn resolve(data: &Value, defs: &Map<String, Value>) -> Value {
    data.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
        .cloned()
        .unwrap_or_else(|| data.clone())
}

/// The names of the definitions `schema` refers to, directly or through other definitions.
fn referenced(schema: &Value, defs: &Map<String, Value>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![schema.clone()];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "$ref"
                        && let Some(name) = v.as_str().and_then(|r| r.strip_prefix("#/$defs/"))
                        && found.insert(name.to_owned())
                        && let Some(def) = defs.get(name)
                    {
                        pending.push(def.clone());
                    } else if key != "$defs" {
                        pending.push(v);
                    }
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    #[test]
    fn every_variant_gets_a_standalone_payload_schema() {
        let schemas = of::<Workspace>();
        let names: Vec<_> = schemas.iter().map(|s| s.event.as_str()).collect();
        assert_eq!(&names[..3], ["created", "updated", "archived"]);
        assert!(names.contains(&"member_invited"), "{names:?}");
        let created = serde_json::to_value(&schemas[0].schema).unwrap();
        assert_eq!(schemas[0].event_type, "io.prism.workspace.created.v1");
        assert_eq!(created["title"], "WorkspaceCreated");
        assert!(created["properties"]["name"].is_object(), "{created:#}");
        // Every reference resolves inside the schema itself.
        let text = created.to_string();
        for name in referenced(&created, created["$defs"].as_object().unwrap_or(&Map::new())) {
            assert!(created["$defs"].get(&name).is_some(), "{name} missing in {text}");
        }
    }
}
