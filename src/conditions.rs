//! Condition types, condition reasons and event reasons: the words keyrotor
//! uses in status and events, in one place so tools can match on them.

/// Condition types.
pub mod types {
    /// Summary: the published keys are valid and keyrotor can manage them.
    pub const READY: &str = "Ready";
    /// A rotation cycle is in flight.
    pub const PROGRESSING: &str = "Progressing";
    /// The cycle in flight cannot finish without help: a group has no
    /// consumer to confirm, a consumer cannot confirm, no usage reporter is
    /// alive (Traffic), or nothing confirmed for `progressDeadline` or within
    /// `gracePeriod.maximum`. The reason says which.
    pub const MIGRATION_STALLED: &str = "MigrationStalled";
    /// kstatus's abnormal-true condition (what Flux's `wait`, `kubectl
    /// wait` users and kstatus-based tools read): True when the rotation
    /// needs a person, with the reason and message of the condition that
    /// says why (`MigrationStalled`, or `Ready=False` for anything but the
    /// first key on its way); False otherwise. The same verdict as the Argo
    /// CD health check's Degraded.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons (CamelCase, stable).
pub mod reasons {
    pub const STABLE: &str = "Stable";
    pub const ROTATING: &str = "Rotating";
    pub const INITIALIZING: &str = "Initializing";
    pub const SUSPENDED: &str = "Suspended";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// A namespace the rotation must copy its Secrets to did not agree
    /// (`keyrotor.dev/accept-from`), does not exist, or is not watched:
    /// nothing is written anywhere until it is fixed.
    pub const TARGET_NOT_PERMITTED: &str = "TargetNotPermitted";
    pub const ADOPTION_PENDING: &str = "AdoptionPending";
    pub const KEY_MATERIAL_MISSING: &str = "KeyMaterialMissing";
    pub const IDLE: &str = "Idle";
    pub const WAITING_FOR_VERIFIERS: &str = "WaitingForVerifiers";
    /// Verifier pods confirmed and the verifier hook has not accepted the
    /// version yet, or a hook answered "not yet" (HTTP 202: the message says
    /// which step and when keyrotor asks again).
    pub const WAITING_FOR_HOOK: &str = "WaitingForHook";
    /// A call to a hook failed (see the message and the HookFailed event).
    pub const HOOK_FAILED: &str = "HookFailed";
    /// A hook refused a step for good (HTTP 4xx): keyrotor does not ask again
    /// until the spec or `keyrotor.dev/retry-hook` changes (`status.hookRefusal`).
    pub const HOOK_REFUSED: &str = "HookRefused";
    pub const WAITING_FOR_PRESENTERS: &str = "WaitingForPresenters";
    pub const WAITING_FOR_GRACE: &str = "WaitingForGrace";
    pub const WAITING_FOR_QUIET: &str = "WaitingForQuietTraffic";
    pub const DELETING_OLD_KEYS: &str = "DeletingOldKeys";
    /// No verifier confirmed for `progressDeadline` (or within the maximum grace).
    pub const VERIFIERS_STALLED: &str = "VerifiersStalled";
    /// No presenter confirmed for `progressDeadline` (or within the maximum grace).
    pub const PRESENTERS_STALLED: &str = "PresentersStalled";
    /// Every verifier pod confirmed; the verifier hook has not accepted the
    /// version for `progressDeadline`.
    pub const HOOK_STALLED: &str = "HookStalled";
    /// A waiting group found fewer consumers than its `minConsumers` (no
    /// running pod references the Secret or matches the selector; a listed
    /// workload does not exist). Raised at once: nothing is confirmed on
    /// missing evidence.
    pub const NO_CONSUMERS: &str = "NoConsumers";
    /// A consumer of a waiting Report or Delay group reads the key through an
    /// environment variable: it never loads a new version. Raised at once.
    pub const CONSUMERS_CANNOT_CONFIRM: &str = "ConsumersCannotConfirm";
    /// Traffic mode: no verifier reported usage within the quiet window, so
    /// silence cannot count as quiet. Raised once the window has passed.
    pub const NO_USAGE_REPORTER: &str = "NoUsageReporter";
    /// Traffic mode at the maximum grace: every presenter confirmed, but
    /// verifiers still see the old version presented.
    pub const TRAFFIC_NOT_QUIET: &str = "TrafficNotQuiet";
    pub const NOT_STALLED: &str = "NotStalled";

    /// Every reason `MigrationStalled` can be True with, for the per-reason
    /// metric (`keyrotor_stalled`).
    pub const STALLED: [&str; 7] = [
        VERIFIERS_STALLED,
        PRESENTERS_STALLED,
        HOOK_STALLED,
        NO_CONSUMERS,
        CONSUMERS_CANNOT_CONFIRM,
        NO_USAGE_REPORTER,
        TRAFFIC_NOT_QUIET,
    ];
}

/// Event reasons.
pub mod events {
    pub const VERSION_CREATED: &str = "VersionCreated";
    pub const VERSION_ADOPTED: &str = "VersionAdopted";
    pub const VERSION_STAGED: &str = "VersionStaged";
    pub const VERSION_PROMOTED: &str = "VersionPromoted";
    pub const VERSION_RETIRED: &str = "VersionRetired";
    pub const RETIRED_ON_TIMEOUT: &str = "RetiredOnTimeout";
    pub const VERSION_REVOKED: &str = "VersionRevoked";
    /// A revoked number above every issued one: it will never be issued.
    pub const REVOKED_IN_ADVANCE: &str = "RevokedInAdvance";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const ROLLBACK_REJECTED: &str = "RollbackRejected";
    /// A stall found by progress or at the maximum grace (see the condition's reason).
    pub const MIGRATION_STALLED: &str = "MigrationStalled";
    /// A waiting group has no consumer to confirm (the condition's reason too).
    pub const NO_CONSUMERS: &str = "NoConsumers";
    /// A consumer reads the key through env and cannot confirm (the condition's reason too).
    pub const CONSUMERS_CANNOT_CONFIRM: &str = "ConsumersCannotConfirm";
    /// Traffic mode has no live usage reporter (the condition's reason too).
    pub const NO_USAGE_REPORTER: &str = "NoUsageReporter";
    /// The events that announce a stall (the `MigrationStalled` condition).
    pub const STALLS: [&str; 4] = [
        MIGRATION_STALLED,
        NO_CONSUMERS,
        CONSUMERS_CANNOT_CONFIRM,
        NO_USAGE_REPORTER,
    ];
    /// A verifier hook added to a Stable rotation now accepts the current version.
    pub const HOOK_STAGED: &str = "HookStaged";
    pub const PROJECTION_REPAIRED: &str = "ProjectionRepaired";
    /// A version Secret deleted by hand was re-created from a projection holding its key.
    pub const KEY_RECOVERED: &str = "KeyRecovered";
    /// A key is gone for good; a new version replaces it.
    pub const KEY_LOST: &str = "KeyLost";
    /// A promote or retire step waits because the pod view lags behind the Secrets.
    pub const STALE_VIEW: &str = "StaleView";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// See the reason of the same name.
    pub const TARGET_NOT_PERMITTED: &str = "TargetNotPermitted";

    /// A call to a hook failed after its retries.
    pub const HOOK_FAILED: &str = "HookFailed";
    /// A hook answered "not yet" (HTTP 202): the step holds and is asked
    /// again after `retryAfterSeconds`. Once per change of the text.
    pub const HOOK_PENDING: &str = "HookPending";
    /// A hook refused a step for good (see the reason of the same name).
    pub const HOOK_REFUSED: &str = "HookRefused";

    /// The API refused a nudge (RBAC lacks `pods patch`): consumers load
    /// changes at kubelet's own pace. Said once per rotation and process.
    pub const NUDGE_FORBIDDEN: &str = "NudgeForbidden";

    /// A verifier endpoint (`keyrotor verifier`) refused a retired version:
    /// a client missed the rotation. Per verifier pod, when its count grows.
    pub const RETIRED_KEY_PRESENTED: &str = "RetiredKeyPresented";
}
