//! The verifier hook (`spec.verifierHook`) as one more verifier: its
//! recorded answer confirms a version the way a verifier pod's report does,
//! and it is told to retire a version just before the version's key is
//! deleted, when no presenter holds it any more. An issuer hook
//! (`spec.issuerHook`) mints keys in apply, outside the plan; the plan only
//! tells it when to revoke one, at the same point.

use super::Planner;
use crate::conditions::events;
use crate::rotation::model::*;

impl Planner<'_> {
    /// Whether the hook (if any) accepts `v`; if not, asks it to (once per
    /// plan). A restart finds the answer on the version Secret, so a
    /// confirmed version is never asked again, and an unrecorded one is asked
    /// again with the same idempotency key.
    pub(super) fn hook_accepts(&mut self, v: Version) -> bool {
        if !self.input.policy.verifier_hook
            || self
                .input
                .obs
                .versions
                .get(&v)
                .is_some_and(|o| o.hook_accepted)
        {
            return true;
        }
        let call = Action::CallHook {
            step: HookStep::Stage,
            version: v,
        };
        if !self.actions.contains(&call) {
            self.actions.push(call);
        }
        false
    }

    /// A verifier hook added to a Stable rotation is first given the
    /// current version, the key presenters send: the hook system must accept
    /// it before a cycle moves on. An adopted key is in use on both sides
    /// already (as at initialization). Returns whether it asked; the answer,
    /// recorded on the version Secret, makes the next plan go on as usual.
    pub(super) fn stage_current_at_hook(&mut self, current: Version) -> bool {
        let Some(v) = self.input.obs.versions.get(&current) else {
            return false;
        };
        if !self.input.policy.verifier_hook
            || v.hook_accepted
            || v.origin == Origin::Adopted
            || !v.has_key
        {
            return false;
        }
        self.hook_accepts(current);
        self.event(
            EventType::Normal,
            events::HOOK_STAGED,
            format!(
                "the verifier hook now accepts version {current}, the current key (the hook was added to a Stable rotation)"
            ),
        );
        true
    }

    /// Tells the hooks to stop accepting `v` (an issuer: to revoke it);
    /// called right before `v`'s Secret is deleted, which every path that
    /// drops a key goes through.
    pub(super) fn hook_retire(&mut self, v: Version) {
        let policy = &self.input.policy;
        if policy.verifier_hook || policy.issuer_hook {
            self.actions.push(Action::CallHook {
                step: HookStep::Retire,
                version: v,
            });
        }
    }
}
