//! The `keyrotor` binary's offline commands, run as a user would.

use std::process::Command;

fn keyrotor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyrotor"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("keyrotor runs")
}

#[test]
fn crd_prints_exactly_the_committed_manifest() {
    let out = keyrotor(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read("crds/apikeyrotations.keyrotor.dev.yaml").unwrap();
    assert!(
        out.stdout == committed,
        "run `cargo run -- crd > crds/apikeyrotations.keyrotor.dev.yaml`"
    );
}

#[test]
fn validate_accepts_the_examples() {
    let out = keyrotor(&[
        "validate",
        "examples/rotation.yaml",
        "examples/single-secret.yaml",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.matches(": valid").count(), 2, "{stdout}");
}

#[test]
fn validate_names_the_field_to_fix_and_fails() {
    let out = keyrotor(&[
        "validate",
        "examples/invalid/grace-minimum-above-maximum.yaml",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("grace-minimum-above-maximum: spec.gracePeriod: gracePeriod.minimum must not exceed gracePeriod.maximum"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 invalid ApiKeyRotation"));
}

#[test]
fn validate_names_a_file_it_cannot_read_and_fails() {
    let out = keyrotor(&["validate", "examples/no-such-file.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("keyrotor: examples/no-such-file.yaml: "),
        "{stderr}"
    );
}

#[test]
fn hook_check_fails_every_row_of_a_hook_that_is_not_there_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("keyrotor-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "a-token").unwrap();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = keyrotor(&[
        "hook",
        "check",
        &url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "keyrotor: 18 of 18 checks failed\n");
    assert!(
        stdout.contains(&format!("cannot connect: 127.0.0.1:{port}: ")),
        "{stdout}"
    );
    assert_eq!(stdout.matches("| FAIL ").count(), 18, "{stdout}");

    let out = keyrotor(&[
        "hook",
        "check",
        "ftp://hook",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "keyrotor: ftp://hook: not http:// or https://\n"
    );
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
