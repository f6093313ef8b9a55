//! The manifest's canonical encoding: the bytes are what the documented rule (Python's `json.dumps`
//! with sorted keys, no whitespace, UTF-8) gives, a fixed manifest has a fixed id (a test vector for
//! other implementations), and any change to what participants consent to changes the id.

use prism_domain::ComputationId;
use prism_domain::computation::ExpectedAsset;
use prism_domain::run::Manifest;
use prism_domain::testing::samples::{pid, sample_definition};

const POLICY: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn manifest() -> Manifest {
    let mut definition = sample_definition();
    // A non-ASCII file name: written as itself, not escaped.
    definition.datasets[0].name = "données.csv".into();
    definition.algorithm.as_mut().unwrap().name = "algo.py".into();
    Manifest::of(
        ComputationId(uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001)),
        &definition,
        POLICY,
    )
}

#[test]
fn the_encoding_is_the_documented_one() {
    let bytes = manifest().canonical_bytes();
    let script = "import json,sys\nm=json.loads(sys.stdin.buffer.read())\n\
                  sys.stdout.buffer.write(json.dumps(m,sort_keys=True,separators=(',',':'),ensure_ascii=False).encode())";
    let mut child = std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (it is required: see the README)");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(bytes.clone()).unwrap()
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(r#"{"algorithm":{"file_name":"algo.py","#),
        "{text}"
    );
    assert!(text.contains("données.csv"), "{text}");
    assert!(text.contains(r#""format":"prism-manifest-v1""#));
}

#[test]
fn a_fixed_manifest_has_a_fixed_id() {
    assert_eq!(manifest().id(), MANIFEST_ID);
}

/// SHA-256 of the canonical bytes of [`manifest`] (which the first test checks against Python).
const MANIFEST_ID: &str = "da06594ab361334ff98f5b464fa9a3cc0b689ed9085eb06b7015eabe330346e2";

#[test]
fn any_change_to_what_is_consented_to_changes_the_id() {
    let base = manifest().id();
    let changed = |change: fn(&mut prism_domain::computation::Definition)| {
        let mut definition = sample_definition();
        definition.datasets[0].name = "données.csv".into();
        definition.algorithm.as_mut().unwrap().name = "algo.py".into();
        change(&mut definition);
        Manifest::of(
            ComputationId(uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001)),
            &definition,
            POLICY,
        )
        .id()
    };
    let ids = [
        changed(|d| d.datasets[0].name = "other.csv".into()),
        changed(|d| d.algorithm.as_mut().unwrap().name = "other.py".into()),
        changed(|d| {
            d.datasets.push(ExpectedAsset {
                provider: pid("bob"),
                hash: prism_domain::values::Sha3Digest::parse(&"ee".repeat(32)).unwrap(),
                name: "more.csv".into(),
                asset: None,
            })
        }),
        changed(|d| d.participants[2].public_key = None),
        changed(|d| {
            d.participants[1]
                .roles
                .insert(prism_domain::computation::Role::ResultConsumer);
        }),
    ];
    for id in &ids {
        assert_ne!(*id, base);
    }
    let mut other_policy = manifest();
    other_policy.attestation_policy_sha256 = "00".repeat(32);
    assert_ne!(other_policy.id(), base);
    let mut other_limits = manifest();
    other_limits.limits.max_run_seconds = 60;
    assert_ne!(other_limits.id(), base);
    // The computation's own limits are what its manifest carries.
    assert_ne!(changed(|d| d.limits.max_run_seconds = 60), base);
    // What is not consented to (the name and description) does not change it.
    assert_eq!(changed(|d| d.description = "new words".into()), base);
}
