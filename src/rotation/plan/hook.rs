//! The verifier hook (`spec.verifierHook`) as one more verifier: its
//! recorded answer confirms a version the way a verifier pod's report does,
//! and it is told to retire a version just before the version's key is
//! deleted, when no presenter holds it any more. An issuer hook
//! (`spec.issuerHook`) mints keys in apply, outside the plan; the plan only
//! tells it when to revoke one, at the same point.

use super::Planner;
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
