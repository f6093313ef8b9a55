//! `prism token-keys`: an operator rotates the access-token signing keys in their file.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

fn prism(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "prism {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_rotation_makes_a_new_key_current_and_keeps_the_old_one_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token-keys.json");
    let first = prism_auth::SigningKeys::load_or_create(&path).unwrap();
    let file = path.to_str().unwrap();

    let listed = prism(&["token-keys", "--token-keys", file, "list"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.contains(first.current_kid()) && listed.contains("current"),
        "{listed}"
    );

    let rotated = prism(&["token-keys", "--token-keys", file, "rotate"]);
    let keys = prism_auth::SigningKeys::load(&path).unwrap();
    assert_ne!(keys.current_kid(), first.current_kid());
    assert!(
        rotated.contains(&format!("now signing with {}", keys.current_kid())),
        "{rotated}"
    );
    // The old key stays, retired, until its tokens have expired.
    let old = keys
        .keys()
        .into_iter()
        .find(|k| k.kid == first.current_kid())
        .unwrap();
    assert!(!old.current && old.retired_at.is_some());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
