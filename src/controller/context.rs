//! State shared by every reconcile: the API client, the slim pod cache, the
//! event recorder, and per-object failure counts for backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::ApiKeyRotation;
use crate::ops::Metrics;

pub struct Context {
    pub client: Client,
    /// Pods, slimmed by `pods::strip` before they are stored.
    pub pods: Store<Pod>,
    pub recorder: Recorder,
    pub metrics: std::sync::Arc<Metrics>,
    failures: Mutex<HashMap<ObjectRef<ApiKeyRotation>, u32>>,
    status_written: Mutex<HashMap<ObjectRef<ApiKeyRotation>, std::time::Instant>>,
}

impl Context {
    pub fn new(
        client: Client,
        pods: Store<Pod>,
        instance: Option<String>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Context {
        let reporter = Reporter {
            controller: "keyrotor".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pods,
            metrics,
            failures: Mutex::new(HashMap::new()),
            status_written: Mutex::new(HashMap::new()),
        }
    }

    /// Exponential backoff per object: 1 s, 2 s, 4 s … capped at 5 minutes.
    pub fn backoff(&self, obj: &ObjectRef<ApiKeyRotation>) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(obj.clone()).or_insert(0);
        *n = (*n + 1).min(16);
        Duration::from_secs((1u64 << (*n - 1)).min(300))
    }

    /// How long ago this process last wrote the object's status.
    pub fn since_status_write(&self, obj: &ObjectRef<ApiKeyRotation>) -> Option<Duration> {
        self.status_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(obj)
            .map(|t| t.elapsed())
    }

    pub fn status_written(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.status_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(obj.clone(), std::time::Instant::now());
    }

    pub fn succeeded(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
    }
}
