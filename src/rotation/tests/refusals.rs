//! Clients that missed a rotation: each verifier endpoint's refused count
//! is announced once per change, and never again after a restart.

use std::collections::BTreeSet;

use super::*;

fn refused(w: &mut World, pod: &str, total: u64, versions: &[Version]) {
    w.refusals.insert(
        pod.into(),
        Refusals {
            total,
            versions: versions.iter().copied().collect::<BTreeSet<_>>(),
            client: Some("10.0.0.7".into()),
        },
    );
}

fn notes(w: &World) -> Vec<String> {
    w.last_plan
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| e.reason == events::RETIRED_KEY_PRESENTED)
        .map(|e| e.note.clone())
        .collect()
}

#[test]
fn a_growing_refused_count_is_announced_once_per_change() {
    let mut w = world(policy());
    refused(&mut w, "gw-0", 0, &[]);
    w.reconcile().unwrap();
    assert!(notes(&w).is_empty());
    refused(&mut w, "gw-0", 3, &[1]);
    w.reconcile().unwrap();
    let said = notes(&w);
    assert_eq!(said.len(), 1);
    assert!(
        said[0].contains("gw-0 refused 3 more") && said[0].contains("10.0.0.7"),
        "{}",
        said[0]
    );
    w.reconcile().unwrap();
    assert!(notes(&w).is_empty(), "the same count again");
    refused(&mut w, "gw-0", 5, &[1]);
    w.reconcile().unwrap();
    assert!(notes(&w)[0].contains("refused 2 more"), "{:?}", notes(&w));
    // The sidecar restarted: its count starts again.
    refused(&mut w, "gw-0", 1, &[1]);
    w.reconcile().unwrap();
    assert!(notes(&w)[0].contains("refused 1 more"), "{:?}", notes(&w));
}

#[test]
fn a_restart_announces_nothing_already_announced() {
    let mut w = world(policy());
    refused(&mut w, "gw-0", 71, &[1]);
    w.reconcile().unwrap();
    assert_eq!(notes(&w).len(), 1);
    for _ in 0..2 {
        w.restart(StatusOnRestart::Kept);
        w.reconcile().unwrap();
        assert!(notes(&w).is_empty(), "{:?}", notes(&w));
        let last = w.last_plan.as_ref().unwrap();
        assert!(last.actions.is_empty() && last.events.is_empty());
    }
    // A pod gone is forgotten.
    w.refusals.clear();
    w.reconcile().unwrap();
    assert!(w.record.refusals_announced.is_empty());
}

#[test]
fn a_revoked_version_is_not_called_a_missed_rotation() {
    let mut w = world(policy());
    w.policy.revoked.insert(3);
    refused(&mut w, "gw-0", 2, &[3]);
    w.reconcile().unwrap();
    let said = notes(&w);
    assert!(said[0].contains("revoked key is in use"), "{}", said[0]);
    assert!(!said[0].contains("give it the current key"), "{}", said[0]);
}
