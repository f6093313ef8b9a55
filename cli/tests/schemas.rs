//! The checked-in JSON Schemas in `schemas/` must equal what the types of every registered aggregate
//! generate (and those of the documents the API answers with: the compliance report), and no file may
//! be left for an event that no longer exists.
//! Regenerate with: `PRISM_UPDATE_SCHEMAS=1 cargo test -p prism-cli --test schemas`.

use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_types_of_every_registered_aggregate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let update = std::env::var_os("PRISM_UPDATE_SCHEMAS").is_some();
    let mut expected_files = Vec::new();
    let mut stale = Vec::new();
    let events = prism_cli::modules::schemas()
        .into_iter()
        .map(|s| (s.event_type, s.schema));
    let documents = [(prism_app::REPORT_FORMAT.to_owned(), prism_app::reports::schema())];
    for (name, schema) in events.chain(documents) {
        let file = format!("{name}.json");
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(&file);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file.clone());
        }
        expected_files.push(file);
    }
    assert!(!expected_files.is_empty());
    let mut extra: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".json") && !expected_files.contains(f))
        .collect();
    extra.sort();
    if update {
        for f in &extra {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        return;
    }
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is stale (changed or missing: {stale:?}; no longer generated: {extra:?}). \
         Regenerate with: PRISM_UPDATE_SCHEMAS=1 cargo test -p prism-cli --test schemas"
    );
}

#[test]
fn every_projection_name_is_registered_once() {
    let names = prism_cli::modules::projection_names();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len(), "{names:?}");
    assert!(names.contains(&"workspaces") && names.contains(&"computations"));
}
