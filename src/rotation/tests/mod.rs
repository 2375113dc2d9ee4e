//! Sentence-named tests of the planner on the simulated cluster: one file per
//! topic of rules (`evidence`: what counts as confirmation and how a stall
//! is found), the property test that drives the planner through
//! thousands of random histories, and the minimal failing inputs it found.
//! This file holds the helpers they share.

mod confirmation;
mod cycle;
mod evidence;
mod exceptions;
mod hook;
mod property;
mod refusals;
mod regressions;
mod usernames;

use std::collections::BTreeSet;

use jiff::SignedDuration;

use super::sim::{StatusOnRestart, World, workload_id};
use super::*;
use crate::conditions::{events, reasons, types};

fn group(mode: Mode) -> GroupPolicy {
    GroupPolicy {
        mode,
        nudge: false,
        propagation_delay: SignedDuration::from_secs(90),
        workloads: vec![],
        min_consumers: 1,
    }
}

fn policy() -> Policy {
    Policy {
        schedule: None,
        grace_minimum: SignedDuration::from_secs(300),
        grace_maximum: SignedDuration::from_secs(3600),
        on_timeout: OnTimeout::Wait,
        progress_deadline: SignedDuration::from_secs(600),
        verifiers: group(Mode::Report),
        presenters: group(Mode::Report),
        quiet_window: None,
        combined: false,
        history_limit: 10,
        suspend: false,
        revoked: BTreeSet::new(),
        adopt: false,
        verifier_hook: false,
        issuer_hook: false,
        usernames: vec![],
    }
}

/// A world with two verifiers and two presenters, settled on version 1.
fn world(policy: Policy) -> World {
    let mut w = World::new(policy);
    for _ in 0..2 {
        w.add_pod(Group::Verifiers, false);
        w.add_pod(Group::Presenters, false);
    }
    w.settle().unwrap();
    assert_eq!(w.current(), Some(1));
    w
}

fn rotate(w: &mut World, token: &str) {
    w.rotate.spec = Some(token.into());
    w.reconcile().unwrap();
}

fn set(v: &[Version]) -> BTreeSet<Version> {
    v.iter().copied().collect()
}

fn has_event(w: &World, reason: &str) -> bool {
    w.events.iter().any(|e| e.reason == reason)
}
