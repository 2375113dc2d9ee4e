//! `keyrotor demo`, shortened: keyrotor's rotation rejects no request while the
//! naive overwrite, on the same pods and traffic, rejects some.

use std::time::Duration;

use keyrotor::demo::{DemoArgs, naive, run_keyrotor};

fn args() -> DemoArgs {
    DemoArgs {
        cycles: 2,
        pods: 2,
        min_delay_ms: 200,
        max_delay_ms: 1500,
        grace: 1,
        nudge: false,
        seed: 7,
        no_naive: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyrotor_rejects_no_request_and_a_naive_overwrite_does() {
    let ours = tokio::time::timeout(Duration::from_secs(120), run_keyrotor(&args(), |_| {}))
        .await
        .expect("the demo finishes")
        .unwrap();
    assert_eq!(ours.rotations, 2);
    assert!(ours.requests > 500, "traffic flowed: {}", ours.requests);
    assert_eq!(ours.rejected, 0, "keyrotor rejected requests");
    let theirs = tokio::time::timeout(
        Duration::from_secs(60),
        naive::run(&args(), Duration::from_secs(2), |_| {}),
    )
    .await
    .expect("the naive run finishes")
    .unwrap();
    assert!(theirs.requests > 500);
    assert!(
        theirs.rejected > 0,
        "a naive overwrite should reject requests while pods disagree"
    );
}
