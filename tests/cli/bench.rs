//! The scale benchmark on ten rotations, so its code cannot rot: the real
//! binary, the in-memory API over HTTP, one full cycle and a restart. No
//! timing is asserted (machines are shared); only what must hold anywhere.

use std::path::Path;

use clap::Parser;
use keyrotor_benchsupport::{BenchArgs, run, table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_benchmark_runs_a_cycle_and_a_restart_on_ten_rotations() {
    let args = BenchArgs::parse_from([
        "scale",
        "--rotations",
        "10",
        "--quiet",
        "2",
        "--timeout",
        "120",
    ]);
    let reports = run(&args, Path::new(env!("CARGO_BIN_EXE_keyrotor")))
        .await
        .expect("the benchmark completes");
    let r = &reports[0];
    assert_eq!(r.quiet_writes, 0, "a quiet cluster gets no writes (I8)");
    assert_eq!(r.cycle_writes.deletes, 10, "each cycle retires one version");
    assert!(
        r.cycle_writes.secrets >= 40,
        "create, stage, promote, retire: {:?}",
        r.cycle_writes
    );
    assert!(r.peak_rss_mib() > 0.0, "memory was read from /proc");
    assert!(
        r.restart_ready.is_some(),
        "/readyz turns 200 once the caches synced"
    );
    let text = table(&reports);
    assert!(text.contains("| ApiKeyRotations | 10 |"), "{text}");
}
