//! What every reconcile shares: the API client, the slim pod cache, the
//! event recorder, the metrics and the operator's memory of each rotation.

use std::sync::Arc;

use kube::Client;
use kube::runtime::reflector::ObjectRef;

use super::cache::PodCache;
use super::events::Recorder;
use super::memory::Memory;
use crate::api::ApiKeyRotation;
use crate::ops::Metrics;

pub struct Context {
    pub client: Client,
    /// Consumer pods, slimmed and indexed.
    pub pods: Arc<PodCache>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// One record per rotation (`memory`).
    pub memory: Memory,
}

impl Context {
    pub fn new(
        client: Client,
        pods: Arc<PodCache>,
        memory: Memory,
        instance: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), crate::wire::FIELD_MANAGER, instance),
            client,
            pods,
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
