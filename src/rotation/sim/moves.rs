//! The simulated world moving: pods come and go, kubelet syncs volumes,
//! reporters report, the clock advances, rollouts finish, outside clients
//! present keys, keyrotor restarts, and everyone cooperates until settled.

use std::collections::BTreeSet;

use jiff::SignedDuration;

use super::{SimPod, StatusOnRestart, World, group_key};
use crate::rotation::*;

impl World {
    // ---- the world moving -----------------------------------------------------

    pub fn add_pod(&mut self, group: Group, stuck: bool) -> String {
        self.add(group, stuck, false)
    }

    /// A pod that reads the key through an environment variable; its
    /// reporter sidecar still reports what its volume holds.
    pub fn add_env_pod(&mut self, group: Group) -> String {
        self.add(group, false, true)
    }

    fn add(&mut self, group: Group, stuck: bool, env: bool) -> String {
        self.pod_counter += 1;
        let name = format!(
            "{}-{}",
            group.as_str().trim_end_matches('s'),
            self.pod_counter
        );
        // A pod starts with whatever its Secret holds now (or waits for it).
        let loaded = self.latest(group);
        // Delay mode trusts kubelet's sync bound; a wedged pod is outside its model.
        let mode = if group == Group::Verifiers {
            self.policy.verifiers.mode
        } else {
            self.policy.presenters.mode
        };
        let stuck = stuck && mode != Mode::Delay;
        self.pods.push(SimPod {
            name: name.clone(),
            group,
            loaded,
            volume: loaded,
            reported: None,
            stuck,
            env,
            nudge: None,
        });
        name
    }

    pub fn remove_pod(&mut self, i: usize) {
        if !self.pods.is_empty() {
            self.pods.remove(i % self.pods.len());
        }
    }

    /// Kubelet updates the pod's volume.
    pub fn sync(&mut self, i: usize) {
        if self.pods.is_empty() {
            return;
        }
        let i = i % self.pods.len();
        let latest = self.latest(self.pods[i].group);
        self.pods[i].load(latest);
    }

    /// The pod reports what it loaded (the reporter sidecar).
    pub fn report(&mut self, i: usize) {
        if self.pods.is_empty() {
            return;
        }
        let i = i % self.pods.len();
        let p = &mut self.pods[i];
        if !p.stuck && p.volume > 0 {
            p.reported = Some(p.volume);
        }
    }

    pub fn sync_and_report_all(&mut self) {
        for i in 0..self.pods.len() {
            self.sync(i);
            self.report(i);
        }
    }

    /// The clock moves; kubelet's sync bound applies to Delay-mode groups.
    pub fn advance(&mut self, secs: i64) {
        self.now += SignedDuration::from_secs(secs);
        for g in [Group::Verifiers, Group::Presenters] {
            let policy = if g == Group::Verifiers {
                &self.policy.verifiers
            } else {
                &self.policy.presenters
            };
            if policy.mode != Mode::Delay {
                continue;
            }
            let secret = if g == Group::Verifiers {
                self.verifier.as_ref()
            } else {
                self.presenter_secret()
            };
            let Some(s) = secret else { continue };
            if self.now >= s.written_at + policy.propagation_delay {
                let latest = s.revision;
                for p in self.pods.iter_mut().filter(|p| p.group == g) {
                    p.load(latest);
                }
            }
        }
    }

    /// Rollout mode: the stamped workload restarts its pods, which load the
    /// latest revision, then the rollout completes.
    pub fn rollout_progress(&mut self, group: Group) {
        let latest = self.latest(group);
        if self.missing_workloads.contains(group_key(group)) {
            return;
        }
        let Some(w) = self.workloads.get_mut(group_key(group)) else {
            return;
        };
        if w.stamped.is_none() || w.rolled_out {
            return;
        }
        w.rolled_out = true;
        // A restart: every pod starts on the latest content, env or not.
        for p in self.pods.iter_mut().filter(|p| p.group == group) {
            (p.loaded, p.volume) = (latest, latest);
            p.stuck = false;
        }
    }

    /// A Rollout group's workload is deleted, and its pods with it, or
    /// created again, with a pod on the latest content.
    pub fn set_workload_missing(&mut self, group: Group, missing: bool) {
        let gp = if group == Group::Verifiers {
            &self.policy.verifiers
        } else {
            &self.policy.presenters
        };
        if gp.mode != Mode::Rollout {
            return;
        }
        if missing {
            self.missing_workloads.insert(group_key(group));
            self.pods.retain(|p| p.group != group);
        } else if self.missing_workloads.remove(group_key(group)) {
            self.add_pod(group, false);
        }
    }

    /// Whether `group`'s Rollout workload is missing.
    pub fn workload_missing(&self, group: Group) -> bool {
        self.missing_workloads.contains(group_key(group))
    }

    /// A client outside the cluster presents its version to a verifier, which
    /// records when it saw it.
    pub fn outside_presents(&mut self) {
        if let Some(v) = self.outside
            && self.accepted().contains(&v)
        {
            self.traffic.insert(v, self.now);
        }
    }

    pub fn outside_moves(&mut self) {
        self.outside = self.current();
    }

    /// keyrotor restarts: a fresh process plans from the cluster; status is
    /// kept, lost, or read stale.
    pub fn restart(&mut self, status: StatusOnRestart) {
        match status {
            StatusOnRestart::Kept => {}
            StatusOnRestart::Lost => self.record = Record::default(),
            StatusOnRestart::Stale(k) => {
                if !self.old_records.is_empty() {
                    let i = self.old_records.len() - 1 - (k % self.old_records.len());
                    self.record = self.old_records[i].clone();
                }
            }
        }
    }

    /// Drives the rotation with every consumer cooperating until it is Stable
    /// with a single accepted version and no leftover key material (I6).
    pub fn settle(&mut self) -> Result<(), String> {
        self.policy.suspend = false;
        self.hook.down = false;
        for p in &mut self.pods {
            p.stuck = false;
        }
        self.cooperate();
        let step = [
            self.policy.grace_minimum,
            self.policy.verifiers.propagation_delay,
            self.policy.presenters.propagation_delay,
            self.policy.quiet_window.unwrap_or_default(),
            SignedDuration::from_secs(5),
        ]
        .into_iter()
        .max()
        .unwrap()
        .as_secs()
            + 1;
        for _ in 0..100 {
            self.sync_and_report_all();
            self.rollout_progress(Group::Verifiers);
            self.rollout_progress(Group::Presenters);
            self.outside_moves();
            self.outside_presents();
            self.reconcile()?;
            self.check()?;
            let settled = self.stage() == Some(Stage::Stable)
                && self.current().is_some()
                && self.accepted().len() == 1
                && self.versions.keys().all(|v| Some(*v) == self.current());
            if settled {
                // The external verifier holds exactly the current key: every
                // other version it was given was retired (no key left behind).
                let current: BTreeSet<Version> = self.current().into_iter().collect();
                if self.policy.verifier_hook && self.hook.accepts != current {
                    return Err(format!(
                        "settled, but the verifier hook accepts {:?} instead of {current:?}",
                        self.hook.accepts
                    ));
                }
                return Ok(());
            }
            self.advance(step);
        }
        Err(format!(
            "did not settle: stage {:?}, accepted {:?}, current {:?}, versions {:?}",
            self.stage(),
            self.accepted(),
            self.current(),
            self.versions.keys().collect::<Vec<_>>()
        ))
    }

    /// What a user does about consumers that cannot confirm: env pods of
    /// groups that cannot restart them are replaced by pods that mount the
    /// Secret, missing workloads are created, and a group with fewer pods
    /// than its `minConsumers` gets its consumers started.
    fn cooperate(&mut self) {
        let policy = self.policy.clone();
        let rollout = |g: Group| {
            let gp = if g == Group::Verifiers {
                &policy.verifiers
            } else {
                &policy.presenters
            };
            gp.mode == Mode::Rollout
        };
        let env: Vec<Group> = self
            .pods
            .iter()
            .filter(|p| p.env && !rollout(p.group))
            .map(|p| p.group)
            .collect();
        self.pods.retain(|p| !p.env || rollout(p.group));
        for g in env {
            self.add_pod(g, false);
        }
        for g in [Group::Verifiers, Group::Presenters] {
            self.set_workload_missing(g, false);
        }
        // An external verifier (a hook) is one verifier found.
        let external = u32::from(policy.verifier_hook || policy.issuer_hook);
        for (g, gp, found) in [
            (Group::Verifiers, &policy.verifiers, external),
            (Group::Presenters, &policy.presenters, 0),
        ] {
            while found + (self.pods.iter().filter(|p| p.group == g).count() as u32)
                < gp.min_consumers
            {
                self.add_pod(g, false);
            }
        }
    }

    pub fn highest_issued(&self) -> Option<Version> {
        self.ledger.highest()
    }
}
