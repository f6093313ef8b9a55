//! OpenAPI schemas of types that already describe themselves with `schemars` (the attestation
//! policy and verdict, defined once in `prism-attestation`): their JSON Schema, with every
//! subschema inlined, read into utoipa's model. Written by hand because utoipa derives its schemas
//! from its own attribute and cannot take a `schemars` one; the two agree on JSON Schema 2020-12,
//! which OpenAPI 3.1 uses, except that utoipa has no `const`: it is written as a one-value `enum`,
//! which means the same.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// The OpenAPI schema of `T`, from its `schemars` description.
pub fn of<T: JsonSchema>() -> RefOr<Schema> {
    let settings = SchemaSettings::draft2020_12().with(|settings| {
        settings.inline_subschemas = true;
        settings.meta_schema = None;
    });
    let mut value = settings.into_generator().into_root_schema_for::<T>().to_value();
    rewrite_const(&mut value);
    if let Value::Object(map) = &mut value {
        // The root's title names the Rust type; the component's name says it already.
        map.remove("title");
    }
    serde_json::from_value(value).expect("a schemars schema reads as an OpenAPI 3.1 schema")
}

fn rewrite_const(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(constant) = map.remove("const") {
                map.insert("enum".into(), Value::Array(vec![constant]));
            }
            map.values_mut().for_each(rewrite_const);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_const),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attestation_types_keep_their_fields_and_tags() {
        let policy = serde_json::to_value(of::<prism_attestation::Policy>()).unwrap();
        assert!(policy["properties"]["sev_snp"]["properties"]["measurements"].is_object());
        let verdict = serde_json::to_value(of::<prism_attestation::Verdict>()).unwrap();
        let text = verdict.to_string();
        assert!(text.contains(r#""enum":["accepted_insecure"]"#) || text.contains("accepted_insecure"));
        assert!(!text.contains("\"const\""));
        assert!(!text.contains("$ref"), "every subschema is inlined");
    }
}
