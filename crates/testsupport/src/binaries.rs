//! The `keyrotor-sidecar` binary for the tests and benches of other packages.
//! Cargo hands `CARGO_BIN_EXE_<name>` only to the package that has the
//! binary, so the `keyrotor` package's tests (tests/cli, the e2e suite's
//! pods, the benches) find it here.
//!
//! It is the binary cargo built beside the running test executable
//! (`target/<profile>/keyrotor-sidecar`): the workspace's `cargo test`
//! builds it with everything else before any test runs, because the sidecar
//! crate has integration tests of its own. When it is missing (one package's
//! tests from a clean target: `cargo test -p keyrotor`) or older than a
//! source it is built from (the sidecar or consumer crate edited since), it
//! is built once per process with `cargo build -p keyrotor-sidecar` into the
//! same target directory and profile, so a test never runs a stale sidecar.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::e2e::cluster::repo;

const SIDECAR: &str = "keyrotor-sidecar";

/// What the sidecar binary is built from: its crate's and the consumer
/// crate's manifests and sources, and the lockfile.
const SOURCES: [&str; 5] = [
    "Cargo.lock",
    "crates/sidecar/Cargo.toml",
    "crates/sidecar/src",
    "crates/consumer/Cargo.toml",
    "crates/consumer/src",
];

/// The up-to-date `keyrotor-sidecar` binary of this build's profile.
pub fn sidecar() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile_dir = profile_dir();
        let binary = profile_dir.join(SIDECAR);
        if !fresh(&binary) {
            build(&profile_dir);
        }
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// `target/<profile>`: the test executable runs from its `deps` folder.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the executable's folder");
    deps.parent().expect("the profile folder").to_path_buf()
}

/// Whether `binary` exists and is newer than every source it is built from.
fn fresh(binary: &Path) -> bool {
    let Some(built) = modified(binary) else {
        return false;
    };
    let newest = SOURCES
        .iter()
        .map(|source| newest_under(&repo().join(source)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    built >= newest
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of `path`, or of a file under it (a
/// bounded walk: the crates' sources are a few dozen files).
fn newest_under(path: &Path) -> SystemTime {
    let mut newest = modified(path)
        .filter(|_| path.is_file())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(t) = modified(&path) {
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// What cargo sets in a test's environment (names, or their beginnings).
const SET_FOR_TESTS: [&str; 8] = [
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// Leaves out of `command`'s environment the variables cargo set for this
/// test process, for a command that runs cargo: build scripts that watch
/// them (ring's) would otherwise see a change and rebuild, there and again
/// in the next `cargo test`.
pub fn without_test_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if SET_FOR_TESTS.iter().any(|set| name.starts_with(set)) {
            command.env_remove(&*name);
        }
    }
}

/// `cargo build -p keyrotor-sidecar` into `profile_dir`.
fn build(profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("the target folder");
    // The cargo running these tests, else the one that built them.
    let program = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut cargo = Command::new(program);
    without_test_env(&mut cargo);
    cargo
        .args(["build", "--locked", "--package", SIDECAR, "--bin", SIDECAR])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => {}
    }
    let status = cargo.status().expect("run cargo to build keyrotor-sidecar");
    assert!(status.success(), "cargo build -p {SIDECAR} failed");
}
