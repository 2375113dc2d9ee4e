//! A simulated cluster for the planner's tests (the rule tests and the
//! property test): Secrets, pods that load and report revisions late or
//! never, a status that can be lost or stale, and crashes between writes.
//! Every write the planner asks for is applied here and checked against the
//! invariants (`super::invariants`), including the one users care about: no
//! presenter ever holds a key that a verifier would reject.
//!
//! `mod.rs` holds the world and what the controller would observe of it,
//! `apply` the controller loop and its checks, `moves` the world moving.

mod apply;
mod moves;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::invariants::VersionLedger;
use super::*;

#[derive(Clone, Debug)]
pub struct SimPod {
    pub name: String,
    pub group: Group,
    /// Revision of its group's Secret whose keys the pod uses (0: none yet,
    /// the pod is not running).
    pub loaded: Revision,
    /// Revision its volume holds, what its reporter reports: `loaded`,
    /// except for an env pod, which keeps the keys it started with.
    pub volume: Revision,
    pub reported: Option<Revision>,
    /// A stuck pod never syncs nor reports (broken reporter, wedged kubelet).
    pub stuck: bool,
    /// It reads the key through an environment variable: only a restart
    /// (a rollout) gives it a new one, whatever its reporter says.
    pub env: bool,
    pub nudge: Option<Nudge>,
}

impl SimPod {
    /// Kubelet updates its volume to `latest`; an env pod's keys stay.
    fn load(&mut self, latest: Revision) {
        if self.stuck {
            return;
        }
        self.volume = latest;
        if !self.env {
            self.loaded = latest;
        }
    }
}

#[derive(Clone, Debug)]
struct SimSecret {
    revision: Revision,
    accepted: BTreeSet<Version>,
    current: Option<Version>,
    written_at: Timestamp,
    highest: Version,
}

/// The external system behind a verifier hook (`Policy::verifier_hook`):
/// the versions it accepts, and how its endpoint misbehaves.
#[derive(Clone, Debug, Default)]
pub struct SimHook {
    pub accepts: BTreeSet<Version>,
    /// The endpoint does not answer: the call fails, the plan stops there.
    pub down: bool,
    /// The next call acts but its answer is lost (a timeout after the
    /// external system changed): nothing is recorded, the plan stops.
    pub lose_answer: bool,
    /// The system holds one password per user (PostgreSQL): staging a
    /// version for a user ends the version that user had before. What
    /// `spec.usernames` with two names (alternating users) is for.
    pub one_password_per_user: bool,
    /// The user each accepted version was staged for.
    pub users: BTreeMap<Version, String>,
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
    pub hook: SimHook,
    /// Groups whose Rollout workload does not exist (deleted, or a typo).
    pub missing_workloads: BTreeSet<&'static str>,
    /// What verifier endpoints refused, by pod (their `traffic` annotation).
    pub refusals: BTreeMap<String, Refusals>,
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
            hook: SimHook::default(),
            missing_workloads: BTreeSet::new(),
            refusals: BTreeMap::new(),
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
                        env: p.env,
                    })
                    .collect(),
                workloads: if policy.mode == Mode::Rollout
                    && !self.missing_workloads.contains(group_key(g))
                {
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
                search: Search {
                    namespace: "sim".into(),
                    secret: group_key(g).into(),
                    selector: None,
                    required: Vec::new(),
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
            refusals: self.refusals.clone(),
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
}

#[derive(Clone, Copy, Debug)]
pub enum StatusOnRestart {
    Kept,
    Lost,
    Stale(usize),
}
