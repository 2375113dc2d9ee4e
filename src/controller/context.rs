//! State shared by every reconcile: the API client, the slim pod cache, the
//! event recorder, and per-object failure counts for backoff.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::reflector::ObjectRef;

use super::events::Recorder;
use super::index::PodCache;
use super::known_secrets::KnownSecrets;
use super::nudges::NudgeLog;
use super::stale_clients::StaleClients;
use crate::api::{ApiKeyRotation, ApiKeyRotationStatus};
use crate::ops::Metrics;

pub struct Context {
    pub client: Client,
    /// Consumer pods, slimmed and indexed.
    pub pods: std::sync::Arc<PodCache>,
    /// What keyrotor last wrote or read of each rotation's Secrets.
    pub secrets: KnownSecrets,
    pub recorder: Recorder,
    pub metrics: std::sync::Arc<Metrics>,
    /// Nudges sent, for when the pod cache lags behind them.
    pub nudges: NudgeLog,
    /// Verifier pods' retired-version counts already announced.
    pub stale_clients: StaleClients,
    failures: Mutex<HashMap<ObjectRef<ApiKeyRotation>, u32>>,
    conflicts: Mutex<HashMap<ObjectRef<ApiKeyRotation>, u32>>,
    status_written: Mutex<HashMap<ObjectRef<ApiKeyRotation>, std::time::Instant>>,
    /// The status this process wrote last, until the cache shows it.
    pending_status: Mutex<HashMap<ObjectRef<ApiKeyRotation>, (u64, ApiKeyRotationStatus)>>,
    /// Rotations (and namespaces) already told that their nudges are refused.
    nudge_refusals: Mutex<(HashSet<ObjectRef<ApiKeyRotation>>, HashSet<String>)>,
}

impl Context {
    pub fn new(
        client: Client,
        pods: std::sync::Arc<PodCache>,
        secrets: KnownSecrets,
        instance: Option<String>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), crate::wire::FIELD_MANAGER, instance),
            client,
            pods,
            secrets,
            metrics,
            nudges: NudgeLog::default(),
            stale_clients: StaleClients::default(),
            failures: Mutex::new(HashMap::new()),
            conflicts: Mutex::new(HashMap::new()),
            status_written: Mutex::new(HashMap::new()),
            pending_status: Mutex::new(HashMap::new()),
            nudge_refusals: Mutex::default(),
        }
    }

    /// Counts `n` refused nudges of `obj`; whether this is the first refusal
    /// for the rotation (say so in an event) and for its namespace (and in
    /// the log). Said once per process, not per reconcile.
    pub fn nudges_refused(&self, obj: &ObjectRef<ApiKeyRotation>, n: usize) -> (bool, bool) {
        let ns = obj.namespace.clone().unwrap_or_default();
        self.metrics.nudges_refused(&ns, &obj.name, n as u64);
        let mut told = self
            .nudge_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rotation = told.0.insert(obj.clone());
        let namespace = told.1.insert(ns);
        (rotation, namespace)
    }

    /// Exponential backoff per object: 1 s, 2 s, 4 s … capped at 5 minutes.
    pub fn backoff(&self, obj: &ObjectRef<ApiKeyRotation>) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(obj.clone()).or_insert(0);
        *n = (*n + 1).min(16);
        Duration::from_secs((1u64 << (*n - 1)).min(300))
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
        let mut c = self.conflicts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(obj.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let base = CONFLICT_BASE * (1u32 << (*n - 1).min(2));
        base + jitter(CONFLICT_JITTER)
    }

    /// How long ago this process last wrote the object's status.
    pub fn since_status_write(&self, obj: &ObjectRef<ApiKeyRotation>) -> Option<Duration> {
        self.status_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(obj)
            .map(|t| t.elapsed())
    }

    /// Records a status write and the resourceVersion the API server gave it.
    pub fn status_written(
        &self,
        obj: &ObjectRef<ApiKeyRotation>,
        status: &ApiKeyRotationStatus,
        resource_version: Option<&str>,
    ) {
        self.status_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(obj.clone(), std::time::Instant::now());
        let mut pending = self
            .pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match resource_version.and_then(|rv| rv.parse().ok()) {
            Some(rv) => pending.insert(obj.clone(), (rv, status.clone())),
            None => pending.remove(obj),
        };
    }

    /// The status this process wrote, when the cached `rot` predates that
    /// write (the watch has not delivered it yet). Planning and comparing on
    /// the cached status would write the same step's status a second time.
    ///
    /// resourceVersions of one resource type are comparable as integers
    /// (KEP-5504, GA in Kubernetes 1.35, and what etcd has always served);
    /// when either does not parse, the cache is trusted as before.
    pub fn newer_status(&self, rot: &ApiKeyRotation) -> Option<ApiKeyRotationStatus> {
        let key = ObjectRef::from_obj(rot);
        let mut pending = self
            .pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (written, status) = pending.get(&key)?;
        let cached: Option<u64> = rot
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok());
        match cached {
            Some(cached) if cached < *written => Some(status.clone()),
            _ => {
                pending.remove(&key);
                None
            }
        }
    }

    /// Forgets a deleted rotation.
    pub fn forget(&self, obj: &ObjectRef<ApiKeyRotation>) {
        let ns = obj.namespace.as_deref().unwrap_or_default();
        self.secrets.forget(ns, &obj.name);
        self.nudges.forget(obj);
        self.stale_clients.forget(obj);
        for map in [&self.failures, &self.conflicts] {
            map.lock().unwrap_or_else(|e| e.into_inner()).remove(obj);
        }
        self.status_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
        self.pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
    }

    pub fn succeeded(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
        self.conflicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
    }
}

/// First retry delay after a conflict (doubles twice, then stays).
const CONFLICT_BASE: Duration = Duration::from_millis(100);
/// Upper bound of the random delay added to a conflict retry.
const CONFLICT_JITTER: Duration = Duration::from_millis(100);

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
