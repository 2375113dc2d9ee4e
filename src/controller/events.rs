//! Kubernetes Events for a rotation's steps, created one per step.
//!
//! kube-runtime's `Recorder` keeps every event it published for six minutes
//! to aggregate repeats into a series, and scans that cache on every publish:
//! at 10,000 rotations a cycle's 40,000 events held tens of MiB and made each
//! publish walk all of them (docs/performance.md). keyrotor's events are one
//! per step and already deduplicated by the planner (a stalled migration is
//! announced once per change), so each is simply created, with the same
//! fields and naming as the `Recorder` gives it.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

use kube::Resource;
use tracing::warn;

use crate::api::ApiKeyRotation;
use crate::rotation::EventType;

/// Who reports: `reportingController` and `reportingInstance`.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Recorder {
        Recorder {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
        }
    }

    /// Creates one Event about `regarding` (action `Reconcile`).
    pub async fn create(
        &self,
        kind: EventType,
        reason: &str,
        note: &str,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = Event {
            action: Some("Reconcile".into()),
            reason: Some(reason.to_string()),
            note: Some(note.to_string()),
            type_: Some(
                match kind {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            metadata: ObjectMeta {
                namespace: Some(ns.clone()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
    }
}

/// Creates an event about `rot`, best effort: losing one must not fail or
/// repeat a rotation step.
pub async fn emit(
    recorder: &Recorder,
    rot: &ApiKeyRotation,
    kind: EventType,
    reason: &str,
    note: &str,
) {
    if let Err(e) = recorder
        .create(kind, reason, note, &rot.object_ref(&()))
        .await
    {
        warn!(reason, error = %e, "could not create event");
    }
}
