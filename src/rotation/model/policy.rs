//! The policy: a validated spec reduced to what the protocol needs, and the
//! on-demand request tokens.

use std::collections::BTreeSet;

use jiff::SignedDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Version;
use crate::rotation::schedule::Schedule;

/// How a consumer group confirms that it loaded a projected Secret revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Mode {
    /// Each pod reports the revision it loaded in an annotation on itself.
    #[default]
    Report,
    /// keyrotor stamps the revision into workload pod templates and waits for the rollouts.
    Rollout,
    /// No feedback: wait the propagation delay.
    Delay,
}

/// What to do when presenters have not all confirmed by the maximum grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum OnTimeout {
    /// Keep the old version, raise `MigrationStalled` and a Warning event.
    #[default]
    Wait,
    /// Retire the old version anyway: lagging presenters will be rejected.
    Retire,
}

/// Workload kinds that Rollout mode can restart.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A workload in the rotation's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub name: String,
}

/// The two consumer groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Verifiers,
    Presenters,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Verifiers => "verifiers",
            Group::Presenters => "presenters",
        }
    }
}

/// How one consumer group is confirmed.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPolicy {
    pub mode: Mode,
    pub nudge: bool,
    pub propagation_delay: SignedDuration,
    pub workloads: Vec<WorkloadId>,
    /// The fewest consumers the group must find before a change counts as
    /// confirmed (Report: running pods; Rollout: every listed workload must
    /// exist). 0 declares that its consumers may all be out of keyrotor's
    /// sight. Delay mode finds none and ignores it.
    pub min_consumers: u32,
}

/// A validated `ApiKeyRotation` spec, reduced to what the protocol needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub schedule: Option<Schedule>,
    pub grace_minimum: SignedDuration,
    pub grace_maximum: SignedDuration,
    pub on_timeout: OnTimeout,
    /// A waiting group none of whose consumers confirmed for this long is
    /// stalled (`MigrationStalled`), long before the maximum grace.
    pub progress_deadline: SignedDuration,
    pub verifiers: GroupPolicy,
    pub presenters: GroupPolicy,
    /// Traffic mode: the old version retires only after this long unseen.
    pub quiet_window: Option<SignedDuration>,
    /// One Secret serves both groups.
    pub combined: bool,
    pub history_limit: usize,
    pub suspend: bool,
    pub revoked: BTreeSet<Version>,
    pub adopt: bool,
    /// An external verifier (`spec.verifierHook`) confirms each version too.
    pub verifier_hook: bool,
    /// An external issuer (`spec.issuerHook`) mints the keys and is told to
    /// revoke each version when it retires.
    pub issuer_hook: bool,
    /// `spec.usernames`: none, one name for every version, or two that
    /// alternate ([`Policy::username_after`]).
    pub usernames: Vec<String>,
}

impl Policy {
    /// The user name of a version created while presenters hold the
    /// version named `current` (`None`: no current version, or one without
    /// a name), where `in_use(name)` says whether a version presenters may
    /// still send, and that is not revoked, carries `name`.
    ///
    /// With two names it is the one `current` does not carry, so the
    /// password of the user presenters send is never the one being
    /// changed; the first name when `current` carries neither (the first
    /// version, an adopted one, or names changed in the spec since). One
    /// exception keeps that promise where the rule alone would break it:
    /// when that name is still in use and the other is not (the current
    /// version revoked while the previous one is still accepted), the new
    /// version takes the other, the revoked version's user.
    pub fn username_after(
        &self,
        current: Option<&str>,
        in_use: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let (first, second) = match self.usernames.as_slice() {
            [] => return None,
            [only] => return Some(only.clone()),
            [first, second, ..] => (first, second),
        };
        let (usual, other) = if current == Some(first.as_str()) {
            (second, first)
        } else {
            (first, second)
        };
        let name = if in_use(usual) && !in_use(other) {
            other
        } else {
            usual
        };
        Some(name.clone())
    }
}

/// On-demand request tokens, by source. A token that differs from the last
/// handled one asks for an action. Two sources so that an imperative
/// `kubectl keyrotor rotate` (annotation) survives a GitOps sync of the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    /// Token from the spec (declarative, from Git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Token from the `keyrotor.dev/...` annotation (imperative, from kubectl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

impl Requests {
    /// Tokens present here that `handled` has not seen.
    pub fn pending_against(&self, handled: &[&Requests]) -> bool {
        let new = |mine: &Option<String>, pick: fn(&Requests) -> &Option<String>| {
            mine.is_some() && !handled.iter().any(|h| pick(h) == mine)
        };
        new(&self.spec, |r| &r.spec) || new(&self.annotation, |r| &r.annotation)
    }

    pub fn is_empty(&self) -> bool {
        self.spec.is_none() && self.annotation.is_none()
    }
}
