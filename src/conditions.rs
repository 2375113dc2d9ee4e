//! Condition types, condition reasons and event reasons: the words keyrotor
//! uses in status and events, in one place so tools can match on them.

/// Condition types.
pub mod types {
    /// Summary: the published keys are valid and keyrotor can manage them.
    pub const READY: &str = "Ready";
    /// A rotation cycle is in flight.
    pub const PROGRESSING: &str = "Progressing";
    /// Consumers have not confirmed within the maximum grace period.
    pub const MIGRATION_STALLED: &str = "MigrationStalled";
}

/// Condition reasons (CamelCase, stable).
pub mod reasons {
    pub const STABLE: &str = "Stable";
    pub const ROTATING: &str = "Rotating";
    pub const INITIALIZING: &str = "Initializing";
    pub const SUSPENDED: &str = "Suspended";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    pub const ADOPTION_PENDING: &str = "AdoptionPending";
    pub const KEY_MATERIAL_MISSING: &str = "KeyMaterialMissing";
    pub const IDLE: &str = "Idle";
    pub const WAITING_FOR_VERIFIERS: &str = "WaitingForVerifiers";
    /// Verifier pods confirmed; the verifier hook has not accepted the version yet.
    pub const WAITING_FOR_HOOK: &str = "WaitingForHook";
    /// A call to the verifier hook failed (see the message and the HookFailed event).
    pub const HOOK_FAILED: &str = "HookFailed";
    pub const WAITING_FOR_PRESENTERS: &str = "WaitingForPresenters";
    pub const WAITING_FOR_GRACE: &str = "WaitingForGrace";
    pub const WAITING_FOR_QUIET: &str = "WaitingForQuietTraffic";
    pub const DELETING_OLD_KEYS: &str = "DeletingOldKeys";
    pub const VERIFIERS_STALLED: &str = "VerifiersStalled";
    pub const PRESENTERS_STALLED: &str = "PresentersStalled";
    pub const NOT_STALLED: &str = "NotStalled";
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
    pub const MIGRATION_STALLED: &str = "MigrationStalled";
    pub const PROJECTION_REPAIRED: &str = "ProjectionRepaired";
    /// A version Secret deleted by hand was re-created from a projection holding its key.
    pub const KEY_RECOVERED: &str = "KeyRecovered";
    /// A key is gone for good; a new version replaces it.
    pub const KEY_LOST: &str = "KeyLost";
    /// A promote or retire step waits because the pod view lags behind the Secrets.
    pub const STALE_VIEW: &str = "StaleView";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SECRET_CONFLICT: &str = "SecretConflict";

    /// A call to the verifier hook failed after its retries.
    pub const HOOK_FAILED: &str = "HookFailed";

    /// The API refused a nudge (RBAC lacks `pods patch`): consumers load
    /// changes at kubelet's own pace. Said once per rotation and process.
    pub const NUDGE_FORBIDDEN: &str = "NudgeForbidden";

    /// A verifier endpoint (`keyrotor verifier`) refused a retired version:
    /// a client missed the rotation. Per verifier pod, when its count grows.
    pub const RETIRED_KEY_PRESENTED: &str = "RetiredKeyPresented";
}
