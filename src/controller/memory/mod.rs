//! What the operator remembers between reconciles: one [`Record`] per
//! rotation, so forgetting a deleted rotation is one call. Nothing here is
//! needed for correctness after a restart (the API holds the truth); each
//! piece saves work or noise:
//!
//! - failures and conflicts: the backoff of the next retry;
//! - the status this process last wrote, until the watch shows it
//!   (planning on the cached one would write the same step twice);
//! - [`KnownSecrets`]: when a LIST from the watch cache may be trusted;
//! - [`NudgesSent`]: the nudge bound, whatever the pod cache shows;
//! - whether the rotation was told that its nudges are refused;
//! - a hook's pending answer (HTTP 202) and until when it stands, so the
//!   step is asked again after `retryAfterSeconds`, not at every reconcile
//!   (a restart asks once at once: nothing is lost).
//!
//! What must not be said twice across a restart (a stall, retired-key
//! counts announced) is kept in status instead, by the planner.

mod known_secrets;
mod nudges;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;

pub use known_secrets::{KnownSecrets, Read};
pub use nudges::NudgesSent;

use crate::api::{ApiKeyRotation, ApiKeyRotationStatus};
use crate::controller::hook::HookHold;
use crate::rotation::{Action, GroupObs};

/// One rotation's memory.
#[derive(Default)]
struct Record {
    failures: u32,
    conflicts: u32,
    status_written_at: Option<Instant>,
    /// The status this process wrote last and its resourceVersion, until
    /// the cache shows it.
    pending_status: Option<(u64, ApiKeyRotationStatus)>,
    /// `None`: nothing known, the next observe reads consistently.
    secrets: Option<KnownSecrets>,
    nudges: NudgesSent,
    told_nudges_refused: bool,
    /// A hook's pending answer and when it stops standing.
    hook_pending: Option<(HookHold, Timestamp)>,
}

/// Every rotation's [`Record`], behind one lock (held for map updates only,
/// never across an await).
pub struct Memory {
    rotations: Mutex<HashMap<ObjectRef<ApiKeyRotation>, Record>>,
    /// Namespaces already told, in the log, that nudges are refused.
    told_namespaces: Mutex<HashSet<String>>,
    /// Whether a LIST from the watch cache may be accepted at all
    /// (`false`: `keyrotor run --list-secrets`).
    cached_reads: bool,
}

/// First retry delay after a conflict (doubles twice, then stays).
const CONFLICT_BASE: Duration = Duration::from_millis(100);
/// Upper bound of the random delay added to a conflict retry.
const CONFLICT_JITTER: Duration = Duration::from_millis(100);

impl Memory {
    pub fn new(cached_reads: bool) -> Memory {
        Memory {
            rotations: Mutex::default(),
            told_namespaces: Mutex::default(),
            cached_reads,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectRef<ApiKeyRotation>, Record>> {
        self.rotations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the rotation's record, made empty if there was none.
    fn with<R>(&self, obj: &ObjectRef<ApiKeyRotation>, f: impl FnOnce(&mut Record) -> R) -> R {
        f(self.lock().entry(obj.clone()).or_default())
    }

    /// Forgets a deleted rotation, all of it.
    pub fn forget(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.lock().remove(obj);
    }

    // --- Backoff ----------------------------------------------------------

    /// Exponential backoff per object: 1 s, 2 s, 4 s … capped at 5 minutes.
    pub fn backoff(&self, obj: &ObjectRef<ApiKeyRotation>) -> Duration {
        self.with(obj, |r| {
            r.failures = (r.failures + 1).min(16);
            Duration::from_secs((1u64 << (r.failures - 1)).min(300))
        })
    }

    /// Retry delay after a 409 Conflict: 100 ms, 200 ms, then 400 ms for
    /// every further consecutive conflict, plus 0–100 ms of jitter (so at
    /// most 0.5 s).
    ///
    /// A conflict is not the API being unwell: it says "your view is stale,
    /// re-read and retry". The retry re-reads the Secrets (fresh GET/LIST) and
    /// plans again, so it usually succeeds at once; growing the delay
    /// exponentially, as for 429/5xx, would only stall a rotation for minutes
    /// behind a burst of concurrent writers. The delay stays short but never
    /// zero (the other writer gets to finish), the jitter keeps two racing
    /// controllers from retrying in lockstep, and the cap bounds the load a
    /// persistent conflict makes to a few reads and one write per second per
    /// object. Conflicts are counted apart from other failures, so they
    /// neither grow nor reset the exponential backoff of real errors.
    pub fn conflict_backoff(&self, obj: &ObjectRef<ApiKeyRotation>) -> Duration {
        let n = self.with(obj, |r| {
            r.conflicts = r.conflicts.saturating_add(1);
            r.conflicts
        });
        CONFLICT_BASE * (1u32 << (n - 1).min(2)) + jitter(CONFLICT_JITTER)
    }

    /// A reconcile succeeded: the next failure starts the backoff afresh.
    pub fn succeeded(&self, obj: &ObjectRef<ApiKeyRotation>) {
        if let Some(r) = self.lock().get_mut(obj) {
            (r.failures, r.conflicts) = (0, 0);
        }
    }

    /// A reconcile failed: whatever failed, the retry reads the rotation's
    /// Secrets from the API consistently.
    pub fn failed(&self, obj: &ObjectRef<ApiKeyRotation>) {
        if let Some(r) = self.lock().get_mut(obj) {
            r.secrets = None;
        }
    }

    // --- Status -----------------------------------------------------------

    /// How long ago this process last wrote the object's status.
    pub fn since_status_write(&self, obj: &ObjectRef<ApiKeyRotation>) -> Option<Duration> {
        let at = self.lock().get(obj)?.status_written_at?;
        Some(at.elapsed())
    }

    /// Records a status write and the resourceVersion the API server gave it.
    pub fn status_written(
        &self,
        obj: &ObjectRef<ApiKeyRotation>,
        status: &ApiKeyRotationStatus,
        resource_version: Option<&str>,
    ) {
        self.with(obj, |r| {
            r.status_written_at = Some(Instant::now());
            r.pending_status = resource_version
                .and_then(|rv| rv.parse().ok())
                .map(|rv| (rv, status.clone()));
        });
    }

    /// The status this process wrote, when the cached `rot` predates that
    /// write (the watch has not delivered it yet). Planning and comparing on
    /// the cached status would write the same step's status a second time.
    ///
    /// resourceVersions of one resource type are comparable as integers
    /// (KEP-5504, GA in Kubernetes 1.35, and what etcd has always served);
    /// when either does not parse, the cache is trusted as before.
    pub fn newer_status(&self, rot: &ApiKeyRotation) -> Option<ApiKeyRotationStatus> {
        let cached: Option<u64> = rot
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok());
        let mut all = self.lock();
        let record = all.get_mut(&ObjectRef::from_obj(rot))?;
        let (written, status) = record.pending_status.as_ref()?;
        match cached {
            Some(cached) if cached < *written => Some(status.clone()),
            _ => {
                record.pending_status = None;
                None
            }
        }
    }

    // --- Secrets (`KnownSecrets`) -------------------------------------------

    /// Whether a list served from the cache could be accepted at all: there
    /// is knowledge to check it against (none before the first consistent
    /// LIST, after a failure, or with `--list-secrets`).
    pub fn knows_secrets(&self, obj: &ObjectRef<ApiKeyRotation>) -> bool {
        self.cached_reads && self.lock().get(obj).is_some_and(|r| r.secrets.is_some())
    }

    /// Whether `listed` (served from the watch cache) holds every one of the
    /// rotation's Secrets exactly as keyrotor last knew it.
    pub fn secrets_current(&self, obj: &ObjectRef<ApiKeyRotation>, listed: &[Secret]) -> bool {
        let mut all = self.lock();
        let known = all.get_mut(obj).and_then(|r| r.secrets.as_mut());
        known.is_some_and(|k| k.current(listed))
    }

    /// A consistent LIST of the rotation's Secrets: the knowledge starts
    /// again from it.
    pub fn secrets_listed(&self, obj: &ObjectRef<ApiKeyRotation>, secrets: &[Secret]) {
        self.with(obj, |r| r.secrets.get_or_insert_default().listed(secrets));
    }

    /// The API's answer to a write (or a read by name) of one of the
    /// rotation's Secrets. Ignored until a consistent LIST started the
    /// knowledge.
    pub fn secret_written(&self, obj: &ObjectRef<ApiKeyRotation>, secret: &Secret) {
        if let Some(k) = self.lock().get_mut(obj).and_then(|r| r.secrets.as_mut()) {
            k.wrote(secret);
        }
    }

    /// One of the rotation's Secrets is gone (deleted, or a 404).
    pub fn secret_deleted(&self, obj: &ObjectRef<ApiKeyRotation>, name: &str) {
        if let Some(k) = self.lock().get_mut(obj).and_then(|r| r.secrets.as_mut()) {
            k.deleted(name);
        }
    }

    // --- Nudges -------------------------------------------------------------

    /// Records the nudges among `actions`, applied at `now`.
    pub fn nudges_sent(&self, obj: &ObjectRef<ApiKeyRotation>, actions: &[Action], now: Timestamp) {
        if actions.iter().any(|a| matches!(a, Action::Nudge { .. })) {
            self.with(obj, |r| r.nudges.sent(actions, now));
        }
    }

    /// Gives each consumer the later of its cached nudge and the one this
    /// process sent (see [`NudgesSent::recall`]).
    pub fn recall_nudges(&self, obj: &ObjectRef<ApiKeyRotation>, groups: [&mut GroupObs; 2]) {
        if let Some(r) = self.lock().get_mut(obj) {
            r.nudges.recall(groups);
        }
    }

    /// Whether this is the first refusal of the rotation's nudges (say so
    /// in an event) and of its namespace's (and in the log). Said once per
    /// process, not per reconcile.
    pub fn nudges_refused(&self, obj: &ObjectRef<ApiKeyRotation>) -> (bool, bool) {
        let rotation = self.with(obj, |r| {
            !std::mem::replace(&mut r.told_nudges_refused, true)
        });
        let ns = obj.namespace.clone().unwrap_or_default();
        let namespace = self
            .told_namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns);
        (rotation, namespace)
    }

    // --- Hook answers -------------------------------------------------------

    /// A hook answered "not yet" (`hold`): it stands until `until`.
    pub fn hook_pending(&self, obj: &ObjectRef<ApiKeyRotation>, hold: &HookHold, until: Timestamp) {
        self.with(obj, |r| r.hook_pending = Some((hold.clone(), until)));
    }

    /// The pending answer that still stands at `now`, and until when.
    pub fn standing_pending(
        &self,
        obj: &ObjectRef<ApiKeyRotation>,
        now: Timestamp,
    ) -> Option<(HookHold, Timestamp)> {
        let all = self.lock();
        let (hold, until) = all.get(obj)?.hook_pending.as_ref()?;
        (now < *until).then(|| (hold.clone(), *until))
    }

    /// A hook answered done: no pending answer stands any more.
    pub fn hook_done(&self, obj: &ObjectRef<ApiKeyRotation>) {
        if let Some(r) = self.lock().get_mut(obj) {
            r.hook_pending = None;
        }
    }
}

/// A random delay in `[0, max)`: randomly seeded std hashing is enough to
/// spread retries.
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let max_ms = max.as_millis().max(1) as u64;
    Duration::from_millis(r % max_ms)
}

#[cfg(test)]
mod tests {
    use super::known_secrets::tests::secret;
    use super::*;

    fn obj() -> ObjectRef<ApiKeyRotation> {
        ObjectRef::new("api").within("ns")
    }

    #[test]
    fn nothing_is_accepted_before_a_consistent_list_or_when_disabled() {
        let m = Memory::new(true);
        assert!(!m.knows_secrets(&obj()));
        assert!(!m.secrets_current(&obj(), &[]));
        m.secret_written(&obj(), &secret("api-v1", "5"));
        assert!(
            !m.knows_secrets(&obj()),
            "a write alone starts no knowledge"
        );
        let off = Memory::new(false);
        off.secrets_listed(&obj(), &[]);
        assert!(!off.knows_secrets(&obj()));
    }

    #[test]
    fn a_failure_means_a_consistent_read_and_keeps_the_rest() {
        let m = Memory::new(true);
        m.secrets_listed(&obj(), &[secret("api-v1", "5")]);
        assert!(m.secrets_current(&obj(), &[secret("api-v1", "5")]));
        assert!(m.nudges_refused(&obj()).0);
        m.failed(&obj());
        assert!(!m.knows_secrets(&obj()));
        assert!(!m.nudges_refused(&obj()).0, "told once per process");
    }

    #[test]
    fn forgetting_a_rotation_forgets_everything_it_remembered() {
        let m = Memory::new(true);
        m.secrets_listed(&obj(), &[]);
        let _ = m.backoff(&obj());
        let _ = m.nudges_refused(&obj());
        m.status_written(&obj(), &ApiKeyRotationStatus::default(), Some("7"));
        m.forget(&obj());
        assert!(!m.knows_secrets(&obj()));
        assert!(m.since_status_write(&obj()).is_none());
        assert!(
            m.nudges_refused(&obj()).0,
            "a rotation of the same name is told again"
        );
        assert_eq!(m.backoff(&obj()), Duration::from_secs(1));
    }

    #[test]
    fn a_pending_hook_answer_stands_until_its_time_or_a_done_answer() {
        use crate::controller::hook::{HoldKind, HookRole};
        let m = Memory::new(true);
        let hold = HookHold {
            role: HookRole::Verifier,
            step: keyrotor_consumer::hook::Step::Stage,
            version: 2,
            answer: HoldKind::Pending { retry_after: 30 },
            reason: None,
        };
        let now: Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
        let until = now + jiff::SignedDuration::from_secs(30);
        assert!(m.standing_pending(&obj(), now).is_none());
        m.hook_pending(&obj(), &hold, until);
        assert_eq!(m.standing_pending(&obj(), now), Some((hold.clone(), until)));
        assert!(m.standing_pending(&obj(), until).is_none(), "its time came");
        m.hook_done(&obj());
        assert!(m.standing_pending(&obj(), now).is_none(), "done");
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes_and_a_success_resets_it() {
        let m = Memory::new(true);
        let delays: Vec<u64> = (0..12).map(|_| m.backoff(&obj()).as_secs()).collect();
        assert_eq!(&delays[..4], &[1, 2, 4, 8]);
        assert_eq!(*delays.last().unwrap(), 300);
        m.succeeded(&obj());
        assert_eq!(m.backoff(&obj()), Duration::from_secs(1));
    }
}
