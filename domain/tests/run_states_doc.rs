//! `docs/run-states.md` shows the run's state machine; it is rendered from the table the aggregate
//! decides with and must not drift from it.
//! Regenerate with: `PRISM_UPDATE_DOCS=1 cargo test -p prism-domain --test run_states_doc`.

use std::path::PathBuf;

const BEGIN: &str = "<!-- diagram:begin (generated from domain/src/run/mod.rs) -->\n";
const END: &str = "<!-- diagram:end -->\n";

#[test]
fn the_documented_state_machine_is_the_one_the_run_decides_with() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/run-states.md");
    let doc = std::fs::read_to_string(&path).expect("docs/run-states.md exists");
    let (head, rest) = doc
        .split_once(BEGIN)
        .expect("the document has a diagram:begin marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("the document has a diagram:end marker");
    let rendered = format!(
        "{head}{BEGIN}```mermaid\n{}```\n{END}{tail}",
        prism_domain::run::state_diagram()
    );
    if std::env::var_os("PRISM_UPDATE_DOCS").is_some() {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    assert!(
        doc == rendered,
        "docs/run-states.md is stale; regenerate with: \
         PRISM_UPDATE_DOCS=1 cargo test -p prism-domain --test run_states_doc"
    );
}
