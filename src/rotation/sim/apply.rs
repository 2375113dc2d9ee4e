//! The controller loop on the simulated cluster: plan, apply each write,
//! check the invariants after every one, write status, or crash midway.

use std::collections::BTreeSet;

use super::{SimSecret, World, group_key, workload_id};
use crate::rotation::invariants::{self, LoadedVerifier, Retirement};
use crate::rotation::*;

impl World {
    /// One reconcile: plan, apply every action (checking invariants after each),
    /// then write status, unless a crash was scheduled.
    pub fn reconcile(&mut self) -> Result<(), String> {
        let planned = plan(&self.policy, &self.observe(), self.now);
        let limit = self.crash_after.take();
        for (i, action) in planned.actions.iter().enumerate() {
            if limit.is_some_and(|k| i >= k) {
                return Ok(()); // crashed before this write; status not written either
            }
            if !self.apply(action)? {
                return Ok(()); // the write failed: the reconcile errs, status not written
            }
            self.check()?;
        }
        if limit.is_some_and(|k| k < planned.actions.len()) {
            return Ok(());
        }
        self.old_records.push(self.record.clone());
        self.record = planned.report.to_record();
        self.events.extend(planned.events.iter().cloned());
        self.last_plan = Some(planned);
        Ok(())
    }

    /// Applies one write; `Ok(false)` when it failed (the rest of the plan is
    /// not applied, as in the controller).
    fn apply(&mut self, action: &Action) -> Result<bool, String> {
        self.writes += 1;
        match action {
            Action::CreateVersion {
                version,
                origin,
                requests,
                username,
            } => {
                if self.versions.contains_key(version) {
                    return Ok(true); // AlreadyExists: the deterministic name makes this idempotent
                }
                self.next_key += 1;
                let fingerprint = match origin {
                    Origin::Adopted => "sha256:adopted".to_string(),
                    Origin::Generated => format!("sha256:{:032x}", self.next_key),
                };
                self.ledger.observe(*version, &fingerprint)?;
                if *origin == Origin::Adopted {
                    // Adopted: the external system already accepts the key in use.
                    self.hook.accepts.insert(*version);
                    if let Some(user) = username {
                        self.hook.users.insert(*version, user.clone());
                    }
                }
                self.versions.insert(
                    *version,
                    VersionObs {
                        fingerprint,
                        has_key: true,
                        created_at: self.now,
                        origin: *origin,
                        requests: requests.clone(),
                        abandoned: None,
                        hook_accepted: false,
                        username: username.clone(),
                    },
                );
            }
            Action::WriteProjection {
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
                invariants::check_deletion(*version, &self.accepted(), self.current())?;
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
            Action::CallHook { step, version } => return self.call_hook(*step, *version),
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
                    p.load(latest); // kubelet resyncs the volume at once
                }
            }
        }
        Ok(true)
    }

    /// The hook endpoint: down, acting but losing its answer, or answering.
    /// Retiring a version a presenter may still hold breaks I3 there.
    fn call_hook(&mut self, step: HookStep, v: Version) -> Result<bool, String> {
        let allowed = match step {
            HookStep::Stage => self.policy.verifier_hook,
            HookStep::Retire => self.policy.verifier_hook || self.policy.issuer_hook,
        };
        if !allowed {
            return Err(format!("hook called ({step:?} {v}) without a hook for it"));
        }
        if self.hook.down {
            return Ok(false);
        }
        match step {
            HookStep::Stage => {
                if !self.versions.get(&v).is_some_and(|o| o.has_key) {
                    return Err(format!("hook asked to stage version {v}, which has no key"));
                }
                self.hook.accepts.insert(v);
                let user = self.versions.get(&v).and_then(|o| o.username.clone());
                if self.hook.one_password_per_user
                    && let Some(user) = user
                {
                    // The user's new password ends the one it had.
                    let users = &self.hook.users;
                    self.hook
                        .accepts
                        .retain(|x| *x == v || users.get(x) != Some(&user));
                    self.hook.users.insert(v, user);
                }
            }
            HookStep::Retire => {
                invariants::check_deletion(v, &self.accepted(), self.current())?;
                self.hook.accepts.remove(&v);
            }
        }
        if std::mem::take(&mut self.hook.lose_answer) {
            return Ok(false);
        }
        if step == HookStep::Stage
            && let Some(o) = self.versions.get_mut(&v)
        {
            o.hook_accepted = true;
        }
        Ok(true)
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
        invariants::check_revision_increases(
            &format!("{target:?}"),
            old.map(|o| o.revision),
            revision,
        )?;
        if writes_verifier {
            invariants::check_accepted_have_keys(accepted, |v| {
                self.versions.get(&v).is_some_and(|o| o.has_key)
            })?;
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

    /// I2, with its exceptions: a revocation's emergency promotion (excused
    /// until every verifier loaded it) and an adopted key already in use.
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
        }
        if self.policy.verifier_hook && !self.hook.accepts.contains(&v) {
            return Err(format!(
                "I2: presenters given version {v}, which the verifier hook does not accept"
            ));
        }
        if emergency || adopted {
            return Ok(());
        }
        invariants::check_promotion_confirmed(v, &self.loaded_verifiers())
    }

    /// I3, with its exceptions: revocation and `onTimeout: Retire` excuse
    /// the holders of `v`.
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
        let retirement = Retirement {
            version: v,
            now: self.now,
            successor_promoted: promoted,
            presented: self.promoted_at.contains_key(&v),
            grace_minimum: self.policy.grace_minimum,
            quiet_window: self.policy.quiet_window,
            last_seen: self.traffic.get(&v).copied(),
            freshest: self.traffic.values().max().copied(),
        };
        let presenters = self
            .pods
            .iter()
            .filter(|p| p.group == Group::Presenters && p.loaded > 0)
            .map(|p| {
                let holds = self.presenter_content.get(&p.loaded).copied().flatten();
                (p.name.as_str(), holds)
            });
        invariants::check_retirement(&retirement, presenters)
    }

    /// I1 on the Secrets as they stand, and zero rejected requests between any
    /// running presenter and any running verifier.
    pub fn check(&mut self) -> Result<(), String> {
        if self.verifier.is_some() {
            invariants::check_current_accepted(&self.accepted(), self.current())?;
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
        let presenters = self
            .pods
            .iter()
            .filter(|p| p.group == Group::Presenters && p.loaded > 0)
            .filter_map(|p| {
                let key = self.presenter_content.get(&p.loaded).copied().flatten()?;
                Some((p.name.as_str(), key))
            })
            .filter(|(_, key)| !self.excused.contains(key) && !self.emergency.contains(key))
            // A revoked key's holders are rejected by choice, at a hook's
            // system as soon as the replacement takes its user.
            .filter(|(_, key)| !self.policy.revoked.contains(key));
        let presenters: Vec<(&str, Version)> = presenters.collect();
        if self.policy.verifier_hook
            && let Some((pod, key)) = presenters
                .iter()
                .find(|(_, key)| !self.hook.accepts.contains(key))
        {
            return Err(format!(
                "rejected request: presenter {pod} sends version {key}, which the verifier hook no longer accepts"
            ));
        }
        invariants::check_no_rejected_request(presenters, &self.loaded_verifiers())
    }

    /// Every running verifier with the accepted set its volume holds.
    fn loaded_verifiers(&self) -> Vec<LoadedVerifier<'_>> {
        self.pods
            .iter()
            .filter(|q| q.group == Group::Verifiers && q.loaded > 0)
            .map(|q| {
                (
                    q.name.as_str(),
                    q.loaded,
                    self.verifier_content.get(&q.loaded),
                )
            })
            .collect()
    }
}
