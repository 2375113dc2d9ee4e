//! `keyrotor sample-app` as processes on loopback: the presenter's requests
//! succeed while the verifier accepts its key, are refused (401) once it does
//! not, and the record never holds the key.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyrotor_testsupport::volume::{self, Volume};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    spawn_with(args, &[])
}

fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_keyrotor"))
            .arg("sample-app")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Statuses recorded so far.
fn statuses(record: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["status"].as_u64())
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn requests_pass_while_accepted_and_are_refused_after() {
    let (old, new) = (volume::key(), volume::key());
    let mut verifier = Volume::new("sample-verifier");
    let mut presenter = Volume::new("sample-presenter");
    verifier.publish(&volume::verifier("api", 1, &[(1, &old)]));
    presenter.publish(&volume::presenter("api", 1, 1, &old));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let record = presenter.dir.with_extension("jsonl");
    let _v = spawn(&[
        "verifier",
        "--dir",
        verifier.dir.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    let _p = spawn(&[
        "presenter",
        "--dir",
        presenter.dir.to_str().unwrap(),
        "--target",
        &addr,
        "--record",
        record.to_str().unwrap(),
        "--interval-ms",
        "20",
    ]);
    wait_for("accepted requests", || {
        statuses(&record).iter().filter(|s| **s == 200).count() >= 5
    });

    // The naive overwrite: the presenter moves first, the verifier does not
    // know the new key yet.
    presenter.publish(&volume::presenter("api", 2, 2, &new));
    wait_for("refused requests", || statuses(&record).contains(&401));
    let refused = statuses(&record).len();
    verifier.publish(&volume::verifier("api", 2, &[(2, &new)]));
    wait_for("accepted again", || {
        statuses(&record)[refused..].contains(&200)
    });

    let text = std::fs::read_to_string(&record).unwrap();
    for key in [&old, &new] {
        assert!(!text.contains(key.expose()), "the record holds a key");
    }
    let _ = std::fs::remove_file(&record);
}

/// `--from-env`: the key is read once at start, as from a `secretKeyRef`
/// environment variable; a later change of the volume does not reach it.
#[test]
fn a_presenter_from_env_keeps_its_start_key() {
    let (old, new) = (volume::key(), volume::key());
    let mut verifier = Volume::new("sample-env-verifier");
    verifier.publish(&volume::verifier("api", 1, &[(1, &old)]));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let record = verifier.dir.with_extension("env.jsonl");
    let _v = spawn(&[
        "verifier",
        "--dir",
        verifier.dir.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    let _p = spawn_with(
        &[
            "presenter",
            "--dir",
            "/nonexistent",
            "--target",
            &addr,
            "--record",
            record.to_str().unwrap(),
            "--interval-ms",
            "20",
            "--from-env",
        ],
        &[("API_KEY", old.expose()), ("API_KEY_VERSION", "1")],
    );
    wait_for("accepted requests", || {
        statuses(&record).iter().filter(|s| **s == 200).count() >= 5
    });
    // The verifier moves on; the presenter still sends its start key.
    verifier.publish(&volume::verifier("api", 2, &[(2, &new)]));
    wait_for("refused requests", || statuses(&record).contains(&401));
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(!text.contains(old.expose()), "the record holds a key");
    let _ = std::fs::remove_file(&record);
}
