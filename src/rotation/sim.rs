//! A simulated cluster for the planner (property tests and the offline demo): Secrets, pods that load and report
//! revisions late or never, a status that can be lost or stale, and crashes
//! between writes. Every write the planner asks for is applied here and checked
//! against the invariants, including the one users care about: no presenter
//! ever holds a key that a verifier would reject.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::invariants::{VersionLedger, check_current_accepted};
use super::*;

#[derive(Clone, Debug)]
pub struct SimPod {
    pub name: String,
    pub group: Group,
    /// Revision of its group's Secret that the pod's volume holds (0: none yet,
    /// the pod is not running).
    pub loaded: Revision,
    pub reported: Option<Revision>,
    /// A stuck pod never syncs nor reports (broken reporter, wedged kubelet).
    pub stuck: bool,
    pub nudge: Option<Nudge>,
}

#[derive(Clone, Debug)]
struct SimSecret {
    revision: Revision,
    accepted: BTreeSet<Version>,
    current: Option<Version>,
    written_at: Timestamp,
    highest: Version,
}

#[derive(Clone, Debug, Default)]
struct SimWorkload {
    stamped: Option<Revision>,
    rolled_out: bool,
}

pub struct World {
    pub now: Timestamp,
    pub policy: Policy,
    pub versions: BTreeMap<Version, VersionObs>,
    verifier: Option<SimSecret>,
    presenter: Option<SimSecret>,
    verifier_content: BTreeMap<Revision, BTreeSet<Version>>,
    presenter_content: BTreeMap<Revision, Option<Version>>,
    pub pods: Vec<SimPod>,
    workloads: BTreeMap<&'static str, SimWorkload>,
    pub record: Record,
    old_records: Vec<Record>,
    pub rotate: Requests,
    pub rollback: Requests,
    pub traffic: BTreeMap<Version, Timestamp>,
    /// The version a client outside the cluster presents (invisible to reports).
    pub outside: Option<Version>,
    pub adoption_available: bool,
    ledger: VersionLedger,
    next_key: u64,
    pod_counter: u32,
    /// Apply only this many actions of the next plan, then "crash".
    pub crash_after: Option<usize>,
    pub last_plan: Option<Plan>,
    promoted_at: BTreeMap<Version, Timestamp>,
    /// Versions whose holders may be rejected by choice (revoked, retired on timeout).
    excused: BTreeSet<Version>,
    /// Versions promoted at once by a revocation, until every verifier loaded them.
    emergency: BTreeSet<Version>,
    pub writes: usize,
    pub events: Vec<Event>,
}

fn group_key(g: Group) -> &'static str {
    match g {
        Group::Verifiers => "verifier-app",
        Group::Presenters => "presenter-app",
    }
}

pub fn workload_id(g: Group) -> WorkloadId {
    WorkloadId {
        kind: WorkloadKind::Deployment,
        name: group_key(g).to_string(),
    }
}

impl World {
    pub fn new(policy: Policy) -> World {
        World {
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            policy,
            versions: BTreeMap::new(),
            verifier: None,
            presenter: None,
            verifier_content: BTreeMap::new(),
            presenter_content: BTreeMap::new(),
            pods: Vec::new(),
            workloads: BTreeMap::new(),
            record: Record::default(),
            old_records: Vec::new(),
            rotate: Requests::default(),
            rollback: Requests::default(),
            traffic: BTreeMap::new(),
            outside: None,
            adoption_available: true,
            ledger: VersionLedger::default(),
            next_key: 0,
            pod_counter: 0,
            crash_after: None,
            last_plan: None,
            promoted_at: BTreeMap::new(),
            excused: BTreeSet::new(),
            emergency: BTreeSet::new(),
            writes: 0,
            events: Vec::new(),
        }
    }

    // ---- the cluster as the controller would observe it ---------------------

    fn presenter_secret(&self) -> Option<&SimSecret> {
        if self.policy.combined {
            self.verifier.as_ref()
        } else {
            self.presenter.as_ref()
        }
    }

    fn latest(&self, g: Group) -> Revision {
        match g {
            Group::Verifiers => self.verifier.as_ref().map_or(0, |s| s.revision),
            Group::Presenters => self.presenter_secret().map_or(0, |s| s.revision),
        }
    }

    pub fn accepted(&self) -> BTreeSet<Version> {
        self.verifier
            .as_ref()
            .map(|s| s.accepted.clone())
            .unwrap_or_default()
    }

    pub fn current(&self) -> Option<Version> {
        self.presenter_secret().and_then(|s| s.current)
    }

    pub fn stage(&self) -> Option<Stage> {
        self.last_plan.as_ref().map(|p| p.report.stage)
    }

    pub fn condition(&self, type_: &str) -> Option<&ConditionState> {
        self.last_plan
            .as_ref()?
            .report
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }

    pub fn observe(&self) -> Observed {
        let published = |s: &SimSecret| Published {
            revision: s.revision,
            accepted: s.accepted.clone(),
            current: s.current,
            written_at: s.written_at,
            highest: s.highest,
        };
        let group = |g: Group| {
            let policy = match g {
                Group::Verifiers => &self.policy.verifiers,
                Group::Presenters => &self.policy.presenters,
            };
            GroupObs {
                consumers: self
                    .pods
                    .iter()
                    .filter(|p| p.group == g && p.loaded > 0)
                    .map(|p| Consumer {
                        pod: p.name.clone(),
                        reported: p.reported,
                        nudge: p.nudge.clone(),
                    })
                    .collect(),
                workloads: if policy.mode == Mode::Rollout {
                    let w = self
                        .workloads
                        .get(group_key(g))
                        .cloned()
                        .unwrap_or_default();
                    vec![WorkloadObs {
                        id: workload_id(g),
                        stamped: w.stamped,
                        rolled_out: w.rolled_out,
                    }]
                } else {
                    Vec::new()
                },
            }
        };
        Observed {
            versions: self.versions.clone(),
            verifier: self.verifier.as_ref().map(published),
            presenter: self.presenter_secret().map(published),
            verifiers: group(Group::Verifiers),
            presenters: group(Group::Presenters),
            traffic: self.traffic.clone(),
            rotate: self.rotate.clone(),
            rollback: self.rollback.clone(),
            adoption: (self.policy.adopt && self.adoption_available).then(|| AdoptionObs {
                fingerprint: "sha256:adopted".into(),
            }),
            record: self.record.clone(),
            verifier_tampered: false,
            presenter_tampered: false,
            recoverable: Default::default(),
        }
    }

    // ---- the controller loop --------------------------------------------------

    /// One reconcile: plan, apply every action (checking invariants after each),
    /// then write status, unless a crash was scheduled.
    pub fn reconcile(&mut self) -> Result<(), String> {
        let plan = plan(&self.policy, &self.observe(), self.now);
        let limit = self.crash_after.take();
        for (i, action) in plan.actions.iter().enumerate() {
            if limit.is_some_and(|k| i >= k) {
                return Ok(()); // crashed before this write; status not written either
            }
            self.apply(action)?;
            self.check()?;
        }
        if limit.is_some_and(|k| k < plan.actions.len()) {
            return Ok(());
        }
        self.old_records.push(self.record.clone());
        self.record = plan.report.to_record();
        self.events.extend(plan.events.iter().cloned());
        self.last_plan = Some(plan);
        Ok(())
    }

    fn apply(&mut self, action: &Action) -> Result<(), String> {
        self.writes += 1;
        match action {
            Action::CreateVersion {
                version,
                origin,
                requests,
            } => {
                if self.versions.contains_key(version) {
                    return Ok(()); // AlreadyExists: the deterministic name makes this idempotent
                }
                self.next_key += 1;
                let fingerprint = match origin {
                    Origin::Adopted => "sha256:adopted".to_string(),
                    Origin::Generated => format!("sha256:{:032x}", self.next_key),
                };
                self.ledger.observe(*version, &fingerprint)?;
                self.versions.insert(
                    *version,
                    VersionObs {
                        fingerprint,
                        has_key: true,
                        created_at: self.now,
                        origin: *origin,
                        requests: requests.clone(),
                        abandoned: None,
                    },
                );
            }
            Action::Publish {
                target,
                accepted,
                current,
                revision,
                highest,
            } => {
                self.publish(*target, accepted, *current, *revision, *highest)?;
            }
            Action::RestoreVersion { version, .. } => {
                // The simulator never deletes a version Secret by hand.
                return Err(format!("version {version} restored, but it was never lost"));
            }
            Action::MarkAbandoned { version, requests } => {
                if let Some(v) = self.versions.get_mut(version) {
                    v.abandoned = Some(requests.clone());
                }
            }
            Action::DeleteVersion { version } => {
                if self.accepted().contains(version) || self.current() == Some(*version) {
                    return Err(format!(
                        "key lost: version {version} deleted while still published"
                    ));
                }
                self.versions.remove(version);
            }
            Action::StampWorkload {
                group,
                workload,
                revision,
            } => {
                if *workload != workload_id(*group) {
                    return Err(format!("stamped unknown workload {workload:?}"));
                }
                let w = self.workloads.entry(group_key(*group)).or_default();
                w.stamped = Some(*revision);
                w.rolled_out = false;
            }
            Action::Nudge {
                group,
                revision,
                pods,
            } => {
                for (name, attempt) in pods {
                    let latest = self.latest(*group);
                    let Some(p) = self.pods.iter_mut().find(|p| &p.name == name) else {
                        return Err(format!("nudged unknown pod {name}"));
                    };
                    p.nudge = Some(Nudge {
                        revision: *revision,
                        attempt: *attempt,
                        at: self.now,
                    });
                    if !p.stuck {
                        p.loaded = latest; // kubelet resyncs the volume at once
                    }
                }
            }
        }
        Ok(())
    }

    fn publish(
        &mut self,
        target: Target,
        accepted: &BTreeSet<Version>,
        current: Option<Version>,
        revision: Revision,
        highest: Version,
    ) -> Result<(), String> {
        let writes_verifier = matches!(target, Target::Verifier | Target::Combined);
        let writes_presenter = matches!(target, Target::Presenter | Target::Combined);
        let old = match target {
            Target::Presenter => self.presenter.as_ref(),
            _ => self.verifier.as_ref(),
        };
        if old.is_some_and(|o| o.revision >= revision) {
            return Err(format!(
                "revision of {target:?} did not increase ({revision})"
            ));
        }
        if writes_verifier {
            for v in accepted {
                if !self.versions.get(v).is_some_and(|o| o.has_key) {
                    return Err(format!(
                        "key lost: version {v} published without key material"
                    ));
                }
            }
            let before = self.accepted();
            for v in before.difference(accepted) {
                self.check_retirement(*v)?;
            }
        }
        if writes_presenter
            && current != self.current()
            && let Some(c) = current
        {
            self.check_promotion(c)?;
            self.promoted_at.insert(c, self.now);
        }
        let secret = SimSecret {
            revision,
            accepted: accepted.clone(),
            current,
            written_at: self.now,
            highest,
        };
        if writes_verifier {
            self.verifier_content.insert(revision, accepted.clone());
        }
        if writes_presenter {
            self.presenter_content.insert(revision, current);
        }
        match target {
            Target::Presenter => self.presenter = Some(secret),
            _ => self.verifier = Some(secret),
        }
        Ok(())
    }

    /// I2: presenters get `v` only once every running verifier has loaded a
    /// revision that accepts it (except revocation and adoption).
    fn check_promotion(&mut self, v: Version) -> Result<(), String> {
        let emergency = self
            .current()
            .is_some_and(|c| self.policy.revoked.contains(&c));
        let adopted = self
            .versions
            .get(&v)
            .is_some_and(|o| o.origin == Origin::Adopted);
        if emergency {
            self.emergency.insert(v);
            return Ok(());
        }
        if adopted {
            return Ok(());
        }
        for p in self
            .pods
            .iter()
            .filter(|p| p.group == Group::Verifiers && p.loaded > 0)
        {
            let accepts = self
                .verifier_content
                .get(&p.loaded)
                .is_some_and(|a| a.contains(&v));
            if !accepts {
                return Err(format!(
                    "I2 broken: presenters given version {v} while verifier {} (revision {}) does not accept it",
                    p.name, p.loaded
                ));
            }
        }
        Ok(())
    }

    /// I3: `v` leaves the accepted set only once no presenter holds it, the
    /// minimum grace passed and its traffic went quiet (except revocation and
    /// onTimeout: Retire).
    fn check_retirement(&mut self, v: Version) -> Result<(), String> {
        if self.policy.revoked.contains(&v) {
            self.excused.insert(v);
            return Ok(());
        }
        let current = self.current();
        let promoted = current.and_then(|c| self.promoted_at.get(&c).copied());
        let timed_out = self.policy.on_timeout == OnTimeout::Retire
            && promoted.is_some_and(|t| self.now >= t + self.policy.grace_maximum);
        if timed_out {
            self.excused.insert(v);
            return Ok(());
        }
        // The grace covers requests in flight with `v`; a version presenters
        // never held (staged, then rolled back) has none.
        let presented = self.promoted_at.contains_key(&v);
        if let Some(t) = promoted
            && presented
            && self.now < t + self.policy.grace_minimum
        {
            return Err(format!(
                "I3 broken: version {v} retired before the minimum grace passed"
            ));
        }
        for p in self
            .pods
            .iter()
            .filter(|p| p.group == Group::Presenters && p.loaded > 0)
        {
            if self.presenter_content.get(&p.loaded).copied().flatten() == Some(v) {
                return Err(format!(
                    "I3 broken: version {v} retired while presenter {} still holds it",
                    p.name
                ));
            }
        }
        if let (Some(q), Some(seen)) = (self.policy.quiet_window, self.traffic.get(&v))
            && self.now < *seen + q
        {
            return Err(format!(
                "I3 broken: version {v} retired while its traffic was not quiet"
            ));
        }
        Ok(())
    }

    /// I1 on the Secrets as they stand, and zero rejected requests between any
    /// running presenter and any running verifier.
    pub fn check(&mut self) -> Result<(), String> {
        if self.verifier.is_some() {
            check_current_accepted(&self.accepted(), self.current())?;
        }
        // An emergency promotion is excused until every verifier has loaded it.
        let verifiers: Vec<Revision> = self
            .pods
            .iter()
            .filter(|q| q.group == Group::Verifiers && q.loaded > 0)
            .map(|q| q.loaded)
            .collect();
        let content = &self.verifier_content;
        self.emergency.retain(|v| {
            !verifiers
                .iter()
                .all(|r| content.get(r).is_some_and(|a| a.contains(v)))
        });
        for p in self
            .pods
            .iter()
            .filter(|p| p.group == Group::Presenters && p.loaded > 0)
        {
            let Some(key) = self.presenter_content.get(&p.loaded).copied().flatten() else {
                continue;
            };
            if self.excused.contains(&key) || self.emergency.contains(&key) {
                continue;
            }
            for q in self
                .pods
                .iter()
                .filter(|q| q.group == Group::Verifiers && q.loaded > 0)
            {
                let accepts = self
                    .verifier_content
                    .get(&q.loaded)
                    .is_some_and(|a| a.contains(&key));
                if !accepts {
                    return Err(format!(
                        "rejected request: presenter {} sends version {key}, verifier {} (revision {}) does not accept it",
                        p.name, q.name, q.loaded
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- the world moving -----------------------------------------------------

    pub fn add_pod(&mut self, group: Group, stuck: bool) -> String {
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
            reported: None,
            stuck,
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
        let p = &mut self.pods[i];
        if !p.stuck {
            p.loaded = latest;
        }
    }

    /// The pod reports what it loaded (the reporter sidecar).
    pub fn report(&mut self, i: usize) {
        if self.pods.is_empty() {
            return;
        }
        let i = i % self.pods.len();
        let p = &mut self.pods[i];
        if !p.stuck && p.loaded > 0 {
            p.reported = Some(p.loaded);
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
                for p in self.pods.iter_mut().filter(|p| p.group == g && !p.stuck) {
                    p.loaded = latest;
                }
            }
        }
    }

    /// Rollout mode: the stamped workload restarts its pods, which load the
    /// latest revision, then the rollout completes.
    pub fn rollout_progress(&mut self, group: Group) {
        let latest = self.latest(group);
        let Some(w) = self.workloads.get_mut(group_key(group)) else {
            return;
        };
        if w.stamped.is_none() || w.rolled_out {
            return;
        }
        w.rolled_out = true;
        for p in self.pods.iter_mut().filter(|p| p.group == group) {
            p.loaded = latest;
            p.stuck = false;
        }
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
        for p in &mut self.pods {
            p.stuck = false;
        }
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

    /// When `g`'s Secret was last written.
    pub fn written_at(&self, g: Group) -> Option<Timestamp> {
        match g {
            Group::Verifiers => self.verifier.as_ref().map(|s| s.written_at),
            Group::Presenters => self.presenter_secret().map(|s| s.written_at),
        }
    }

    /// The latest revision of `g`'s Secret.
    pub fn latest_revision(&self, g: Group) -> Revision {
        self.latest(g)
    }

    /// A request from presenter pod `p` to verifier pod `q`: `None` if either
    /// has no key yet, else whether the verifier accepts the presented version.
    pub fn request(&self, p: usize, q: usize) -> Option<bool> {
        let key = self
            .presenter_content
            .get(&self.pods[p].loaded)
            .copied()
            .flatten()?;
        let accepted = self.verifier_content.get(&self.pods[q].loaded)?;
        Some(accepted.contains(&key))
    }

    pub fn highest_issued(&self) -> Option<Version> {
        self.ledger.highest()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum StatusOnRestart {
    Kept,
    Lost,
    Stale(usize),
}
