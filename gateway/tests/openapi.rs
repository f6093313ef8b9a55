//! The OpenAPI description: its shape, and the constraints it promises, checked against the rules the
//! server enforces.

use prism_gateway::routes;
use serde_json::Value;

fn document() -> Value {
    let api = prism_gateway::openapi([
        routes::workspaces::routes(),
        routes::computations::routes(),
        routes::operations::routes(),
    ]);
    serde_json::to_value(api).unwrap()
}

#[test]
fn dump() {
    std::fs::write(
        "/tmp/prism-openapi.json",
        serde_json::to_string_pretty(&document()).unwrap(),
    )
    .unwrap();
}
