//! What every reconcile shares: the API client, the slim pod cache (and,
//! through `reach`, those of other scopes), the
//! event recorder, the metrics and the operator's memory of each rotation.

use std::sync::Arc;

use kube::Client;
use kube::runtime::reflector::ObjectRef;

use super::cache::PodCache;
use super::events::Recorder;
use super::memory::Memory;
use super::reach::Reach;
use crate::api::ApiKeyRotation;
use crate::ops::Metrics;

pub struct Context {
    pub client: Client,
    /// Consumer pods of this scope, slimmed and indexed.
    pub pods: Arc<PodCache>,
    /// What every scope shares: other namespaces' pods, Namespaces, copies.
    pub reach: Arc<Reach>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// One record per rotation (`memory`).
    pub memory: Memory,
}

impl Context {
    pub fn new(
        client: Client,
        pods: Arc<PodCache>,
        reach: Arc<Reach>,
        memory: Memory,
        instance: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), crate::wire::FIELD_MANAGER, instance),
            client,
            pods,
            reach,
            memory,
            metrics,
        }
    }

    /// Forgets a deleted rotation: its memory and its metric series.
    pub fn forget(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.memory.forget(obj);
        self.metrics
            .forget(obj.namespace.as_deref().unwrap_or_default(), &obj.name);
    }
}
