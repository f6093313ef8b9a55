//! `docs/permissions.md` shows the permission matrix that the application layer enforces; it is
//! rendered from the domain's data and must not drift from it.
//! Regenerate with: `PRISM_UPDATE_DOCS=1 cargo test -p prism-domain --test permissions_doc`.

use std::path::PathBuf;

const BEGIN: &str = "<!-- matrix:begin (generated from domain/src/access.rs) -->\n";
const END: &str = "<!-- matrix:end -->\n";

#[test]
fn the_documented_matrix_is_the_enforced_one() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/permissions.md");
    let doc = std::fs::read_to_string(&path).expect("docs/permissions.md exists");
    let (head, rest) = doc
        .split_once(BEGIN)
        .expect("the document has a matrix:begin marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("the document has a matrix:end marker");
    let rendered = format!(
        "{head}{BEGIN}{}{END}{tail}",
        prism_domain::access::markdown_table()
    );
    if std::env::var_os("PRISM_UPDATE_DOCS").is_some() {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    assert!(
        doc == rendered,
        "docs/permissions.md is stale; regenerate with: \
         PRISM_UPDATE_DOCS=1 cargo test -p prism-domain --test permissions_doc"
    );
}
