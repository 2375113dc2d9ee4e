//! Stalls: a cycle that cannot finish without help says so in
//! `MigrationStalled`, with a reason that names the cause and a message that
//! names the consumers concerned and what to do. Three ways to find one:
//!
//! - **at once** (`obstacles`): a waiting group found fewer consumers than
//!   its `minConsumers`, a listed workload does not exist, or a consumer
//!   reads the key through env: nothing will ever confirm;
//! - **by progress** (`progress_check`): none of the group's consumers
//!   confirmed for `progressDeadline`;
//! - **at the maximum grace** (`grace_check`), where `onTimeout` applies.
//!
//! The first stall found in a plan is the one reported. The event is sent
//! once per change of the condition (`report`), which status keeps.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::confirm::WAITING_SHOWN;
use super::{Planner, join};
use crate::conditions::reasons;
use crate::rotation::duration;
use crate::rotation::model::*;

impl Planner<'_> {
    /// Raises a stall, unless this plan found one already.
    pub(super) fn stall(&mut self, reason: &'static str, message: String) {
        if self.report.stalled.is_none() {
            self.report.stalled = Some((reason, message));
        }
    }

    /// Verifiers (pods and the hook) have not all confirmed `next`: what
    /// the plan waits for, and whether that is a stall.
    pub(super) fn verifiers_wait(
        &mut self,
        next: Version,
        (revision, written): (Revision, Option<Timestamp>),
        (pods, hook): (bool, bool),
        holds: &str,
    ) {
        self.report.waiting_reason = if pods {
            reasons::WAITING_FOR_HOOK
        } else {
            reasons::WAITING_FOR_VERIFIERS
        };
        if !pods {
            self.obstacles(Group::Verifiers, holds);
            let reason = reasons::VERIFIERS_STALLED;
            self.progress_check(Group::Verifiers, revision, written, reason, holds);
        }
        if !hook {
            self.hook_check(next, written, holds);
        }
        let reason = if pods {
            reasons::HOOK_STALLED
        } else {
            reasons::VERIFIERS_STALLED
        };
        self.grace_check(written, reason);
    }

    /// Says at once what keeps waiting `group` from ever confirming; `holds`
    /// says what stays as it is meanwhile.
    pub(super) fn obstacles(&mut self, group: Group, holds: &str) {
        let gp = self.group_policy(group);
        let go = self.group_obs(group);
        let at = secret_at(&go.search);
        let mut env: Vec<&str> = go
            .consumers
            .iter()
            .filter(|c| c.env)
            .map(|c| c.pod.as_str())
            .collect();
        if gp.mode != Mode::Rollout && !env.is_empty() {
            env.sort();
            let msg = format!(
                "pod(s) {} read Secret {at} through an environment variable (env or envFrom): its value is fixed when a container starts, so they never load a new version and are never counted as confirmed; {holds}. Set confirmation: Rollout for their workload in spec.consumers.{} (keyrotor restarts it and waits for the rollout), or mount the Secret as a volume",
                names(&env),
                group.as_str(),
            );
            self.stall(reasons::CONSUMERS_CANNOT_CONFIRM, msg);
        }
        let empty = self.empty_namespaces(group);
        if gp.mode == Mode::Report && !empty.is_empty() && self.report.stage != Stage::Initializing
        {
            let msg = format!(
                "no {g} found in namespace {ns}, named in spec.consumers.{g}.namespaces: keyrotor counts the running pods there that reference its copy of Secret {secret}. Nothing is confirmed on missing evidence: {holds}. Start the consumers there, remove the namespace from the list, or set minConsumers: 0",
                g = group.as_str(),
                ns = empty.join(", "),
                secret = go.search.secret,
            );
            self.stall(reasons::NO_CONSUMERS, msg);
        } else if gp.mode == Mode::Report && !self.enough_found(group) {
            let selector = go
                .search
                .selector
                .as_ref()
                .map(|s| format!(" or match the selector {s}"))
                .unwrap_or_default();
            let found = self.found(group);
            let msg = format!(
                "{few} {g} found ({found} of spec.consumers.{g}.minConsumers: {min}): keyrotor counts the running pods of namespace {ns} that reference Secret {at} (volume, projected volume, env or envFrom){selector}. Nothing is confirmed on missing evidence: {holds}. Start the consumers, correct the Secret name in their pods or in spec.secrets, add a selector for pods that get the key another way, or set minConsumers: 0 if they all run outside this namespace or cluster",
                few = if found == 0 { "no" } else { "too few" },
                min = gp.min_consumers,
                g = group.as_str(),
                ns = go.search.namespace,
            );
            self.stall(reasons::NO_CONSUMERS, msg);
        }
        if gp.mode == Mode::Rollout && self.workload_required(group) {
            let missing: Vec<String> = gp
                .workloads
                .iter()
                .filter(|id| !go.workloads.iter().any(|w| &w.id == *id))
                .map(|id| format!("{:?}/{}", id.kind, id.name))
                .collect();
            if !missing.is_empty() {
                let msg = format!(
                    "{} listed in spec.consumers.{g}.workloads not found in namespace {ns}: keyrotor cannot restart it, so nothing confirms for it; {holds}. Create it, correct the name, or set spec.consumers.{g}.minConsumers: 0 to skip listed workloads that do not exist",
                    missing.join(", "),
                    g = group.as_str(),
                    ns = go.search.namespace,
                );
                self.stall(reasons::NO_CONSUMERS, msg);
            }
        }
    }

    /// Raises `reason` once no consumer of `group` confirmed `revision` for
    /// the progress deadline, else wakes at that deadline. Delay mode waits
    /// a fixed time and cannot stall.
    pub(super) fn progress_check(
        &mut self,
        group: Group,
        revision: Revision,
        written: Option<Timestamp>,
        reason: &'static str,
        holds: &str,
    ) {
        let progress = self.progress(group, revision, written);
        let Some(since) = progress.last_progress_time else {
            return;
        };
        let deadline = self.input.policy.progress_deadline;
        if self.input.now < since + deadline {
            self.wake_at(since + deadline);
            return;
        }
        let waiting = progress.total - progress.confirmed;
        let shown: Vec<&str> = progress.waiting_for.iter().map(String::as_str).collect();
        let more = waiting.saturating_sub(WAITING_SHOWN as u32);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let msg = format!(
            "no {} confirmed revision {revision} of Secret {} for {} (spec.progressDeadline; last progress at {since}): waiting for {}{more}; {holds}",
            group.as_str().trim_end_matches('s'),
            secret_at(&self.group_obs(group).search),
            duration::format(deadline),
            names(&shown),
        );
        self.stall(reason, msg);
    }

    /// Raises `HookStalled` once the verifier hook has not accepted version
    /// `v` for the progress deadline since the verifier Secret staged it
    /// (`written`; the hook is asked from then on, and a failing call writes
    /// nothing else that could mark progress).
    pub(super) fn hook_check(&mut self, v: Version, written: Option<Timestamp>, holds: &str) {
        let since = written.unwrap_or(self.input.now);
        let deadline = self.input.policy.progress_deadline;
        if self.input.now < since + deadline {
            self.wake_at(since + deadline);
            return;
        }
        self.stall(
            reasons::HOOK_STALLED,
            format!(
                "the verifier hook has not accepted version {v} for {} since it was staged at {since} (spec.progressDeadline); {holds}. See Ready and Progressing, the HookFailed or HookPending event and the hook's log",
                duration::format(deadline)
            ),
        );
    }

    /// Raises `reason` once the maximum grace after `since` passed, else
    /// wakes at that deadline.
    pub(super) fn grace_check(&mut self, since: Option<Timestamp>, reason: &'static str) {
        let since = since.unwrap_or(self.input.now);
        let max = self.input.policy.grace_maximum;
        if self.input.now < since + max {
            self.wake_at(since + max);
            return;
        }
        let what = match reason {
            reasons::VERIFIERS_STALLED => "verifiers have not confirmed",
            reasons::HOOK_STALLED => "the verifier hook has not accepted the new version",
            reasons::TRAFFIC_NOT_QUIET => {
                "every presenter confirmed, but verifiers still see the old version presented (a client outside the cluster uses it)"
            }
            _ => "presenters have not confirmed",
        };
        self.stall(
            reason,
            format!(
                "{what} within the maximum grace period ({}); the old key stays valid",
                duration::format(max)
            ),
        );
    }

    /// Traffic mode: whether `olds` went quiet. A version counts as quiet
    /// once a verifier reported traffic (of any version) a whole quiet window
    /// after it was last seen and after `promoted_at`: the window counts only
    /// while a usage reporter is alive and reporting, so silence is not
    /// quiet. No report within the last window means no reporter is alive,
    /// which stalls the rotation.
    pub(super) fn quiet(&mut self, olds: &BTreeSet<Version>, promoted_at: Timestamp) -> bool {
        let Some(window) = self.input.policy.quiet_window else {
            return true;
        };
        let now = self.input.now;
        let freshest = self.freshest_usage();
        let mut quiet = true;
        for v in olds {
            let since = self
                .last_seen(*v)
                .map_or(promoted_at, |t| t.max(promoted_at));
            let end = since + window;
            if now < end {
                quiet = false;
                self.wake_at(end);
            } else if freshest.is_none_or(|f| f < end) {
                quiet = false;
            }
        }
        let alive = freshest.is_some_and(|f| now < f + window);
        if !quiet
            && !alive
            && olds
                .iter()
                .all(|v| self.quiet_window_passed(*v, promoted_at))
        {
            let last = freshest.map_or_else(
                || "no report yet".to_string(),
                |f| format!("last report at {f}"),
            );
            let at = secret_at(&self.input.obs.verifiers.search);
            self.stall(
                reasons::NO_USAGE_REPORTER,
                format!(
                    "Traffic mode: no verifier reported usage (its last-seen annotation) within the quiet window ({}; {last}), so silence cannot show that version(s) {} are unused; they stay accepted. The client library and `keyrotor verifier` report it from the verifier pods of Secret {at}: make sure they run and may annotate their pod, or remove spec.consumers.presenters.traffic",
                    duration::format(window),
                    join(olds),
                ),
            );
        } else if !quiet
            && alive
            && let Some(f) = freshest
        {
            self.wake_at(f + window); // when the last reporter counts as gone
        }
        quiet
    }

    fn quiet_window_passed(&self, v: Version, promoted_at: Timestamp) -> bool {
        let window = self.input.policy.quiet_window.unwrap_or_default();
        let since = self
            .last_seen(v)
            .map_or(promoted_at, |t| t.max(promoted_at));
        self.input.now >= since + window
    }
}

/// `namespace/secret`.
fn secret_at(s: &Search) -> String {
    format!("{}/{}", s.namespace, s.secret)
}

/// Up to [`WAITING_SHOWN`] names, then how many more.
fn names(all: &[&str]) -> String {
    let shown = all.iter().take(WAITING_SHOWN).copied().collect::<Vec<_>>();
    let more = all.len().saturating_sub(WAITING_SHOWN);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
