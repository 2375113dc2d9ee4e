//! `keyrotor demo`: the real rotation planner driving a simulated cluster in
//! simulated time. Verifier and presenter pods load each Secret change after
//! their own kubelet delay and report it like the reporter sidecar; every
//! simulated second each presenter sends a request to a verifier. The run ends
//! with how many requests were rejected: with keyrotor's ordering, none.

use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};
use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::rotation::sim::World;
use crate::rotation::{Group, GroupPolicy, Mode, OnTimeout, Policy, Stage};

/// Demo settings (flags of `keyrotor demo`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Rotation cycles to run back to back.
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Verifier pods and presenter pods (each).
    #[arg(long, default_value_t = 3)]
    pub pods: usize,
    /// Slowest kubelet volume refresh, in seconds (each pod draws 1..=this).
    #[arg(long, default_value_t = 90)]
    pub max_delay: u64,
    /// Minimum grace period in seconds.
    #[arg(long, default_value_t = 120)]
    pub grace: i64,
    /// Seed for the pods' delays: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What a demo run measured.
#[derive(Debug, Default)]
pub struct Summary {
    pub rotations: u32,
    pub requests: u64,
    pub rejected: u64,
    pub simulated_secs: i64,
    pub timeline: String,
}

/// Runs the demo; the timeline is written as it goes into `Summary::timeline`.
pub fn run(args: &DemoArgs) -> Result<Summary, String> {
    let group = |mode| GroupPolicy {
        mode,
        nudge: false,
        propagation_delay: SignedDuration::from_secs(90),
        workloads: vec![],
    };
    let policy = Policy {
        schedule: None,
        grace_minimum: SignedDuration::from_secs(args.grace),
        grace_maximum: SignedDuration::from_hours(1),
        on_timeout: OnTimeout::Wait,
        verifiers: group(Mode::Report),
        presenters: group(Mode::Report),
        quiet_window: None,
        combined: false,
        history_limit: 10,
        suspend: false,
        revoked: Default::default(),
        adopt: false,
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut w = World::new(policy);
    let start: Timestamp = w.now;
    // Version 1 first: pods mounting the Secrets start once they exist.
    w.reconcile()?;
    w.reconcile()?;
    let mut delays = Vec::new();
    for g in [Group::Verifiers, Group::Presenters] {
        for _ in 0..args.pods {
            w.add_pod(g, false);
            delays.push(rng.random_range(1..=args.max_delay.max(1)) as i64);
        }
    }
    let mut s = Summary::default();
    let mut seen_events = 0;
    let (verifiers, presenters): (Vec<usize>, Vec<usize>) =
        (0..w.pods.len()).partition(|i| w.pods[*i].group == Group::Verifiers);
    let limit = 24 * 3600 * i64::from(args.cycles.max(1));
    for tick in 0..limit {
        // Kubelet refreshes each pod's volume after that pod's own delay.
        for (i, delay) in delays.iter().enumerate() {
            let g = w.pods[i].group;
            let due = w
                .written_at(g)
                .is_some_and(|t| w.now >= t + SignedDuration::from_secs(*delay));
            if due && w.pods[i].loaded < w.latest_revision(g) {
                w.sync(i);
                w.report(i);
            }
        }
        // Traffic: each presenter calls one verifier.
        for (k, p) in presenters.iter().enumerate() {
            let q = verifiers[(tick as usize + k) % verifiers.len()];
            if let Some(ok) = w.request(*p, q) {
                s.requests += 1;
                if !ok {
                    s.rejected += 1;
                }
            }
        }
        let stable = w.stage() == Some(Stage::Stable) && w.accepted().len() == 1;
        if stable && w.current().is_some_and(|c| c > u64::from(s.rotations)) {
            s.rotations = w.current().map_or(0, |c| c as u32) - 1;
            if s.rotations >= args.cycles {
                break;
            }
            w.rotate.spec = Some(format!("demo-{}", s.rotations + 1));
        }
        w.reconcile()?;
        for e in &w.events[seen_events..] {
            let _ = writeln!(
                s.timeline,
                "t={:>5}s  {:<16} {}",
                w.now.duration_since(start).as_secs(),
                e.reason,
                e.note
            );
        }
        seen_events = w.events.len();
        w.advance(1);
    }
    s.simulated_secs = w.now.duration_since(start).as_secs();
    Ok(s)
}

/// Prints the timeline and the summary.
pub fn print(args: &DemoArgs) -> Result<(), String> {
    let s = run(args)?;
    println!("keyrotor demo: the rotation planner on a simulated cluster");
    println!(
        "{} verifier and {} presenter pods, kubelet delays 1-{}s (seed {}), minimum grace {}s\n",
        args.pods, args.pods, args.max_delay, args.seed, args.grace
    );
    print!("{}", s.timeline);
    println!("\nrotations completed : {}", s.rotations);
    println!("requests sent       : {}", s.requests);
    println!("requests rejected   : {}", s.rejected);
    println!("simulated time      : {}s", s.simulated_secs);
    if s.rotations < args.cycles {
        return Err(format!(
            "only {} of {} rotations completed",
            s.rotations, args.cycles
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_rotates_with_zero_rejected_requests_and_is_deterministic() {
        let args = DemoArgs {
            cycles: 3,
            pods: 3,
            max_delay: 90,
            grace: 120,
            seed: 7,
        };
        let a = run(&args).unwrap();
        assert_eq!(a.rotations, 3);
        assert!(a.requests > 1000);
        assert_eq!(a.rejected, 0);
        let b = run(&args).unwrap();
        assert_eq!(a.timeline, b.timeline);
        assert!(a.timeline.contains("VersionPromoted") && a.timeline.contains("VersionRetired"));
    }
}
