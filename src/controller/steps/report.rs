//! Report: what one reconcile tells the cluster and the operator's people
//! about what it did — the status of the plan (written only when it changed,
//! I8), the plan's events beside it (among them clients that missed a
//! rotation), refused nudges, and the per-rotation metrics.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::apply::Applied;
use super::status;
use crate::api::{ApiKeyRotation, validate::Validated};
use crate::conditions::events;
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::events::emit;
use crate::rotation::{EventType, Plan};

/// Reports one reconcile's plan and writes. Returns when to look again for
/// a held-back progress update of the status.
pub async fn report(
    rot: &ApiKeyRotation,
    ctx: &Context,
    validated: &Validated,
    decided: &Plan,
    applied: Applied,
    now: Timestamp,
) -> Result<Option<Duration>> {
    let obj = ObjectRef::from_obj(rot);
    ctx.memory.nudges_sent(&obj, &decided.actions, now);
    if applied.nudges_refused > 0 {
        nudges_refused(rot, ctx, &obj, applied.nudges_refused).await;
    }
    if applied.writes > 0 {
        let (writes, stage, current) =
            (applied.writes, decided.report.stage, decided.report.current);
        info!(writes, ?stage, ?current, "applied plan");
    }
    let status = status::of_plan(decided, (&applied.created, applied.hook_done), rot, now);
    let (ns, name) = (rot.namespace().unwrap_or_default(), rot.name_any());
    ctx.metrics.observe(&ns, &name, &status, &validated.policy);
    let events = async {
        for e in &decided.events {
            emit(&ctx.recorder, rot, e.kind, e.reason, &e.note).await;
            ctx.metrics.event(e.reason);
        }
    };
    let ((), deferred) = futures::join!(events, status::write_status(rot, ctx, status));
    deferred
}

/// The API refused nudges (403): without `pods patch` every step waits for
/// kubelet's periodic sync (60–90 s) instead of seconds. Said once per
/// namespace in the log and once per rotation in an event; counted in
/// `keyrotor_nudges_refused_total`.
async fn nudges_refused(
    rot: &ApiKeyRotation,
    ctx: &Context,
    obj: &ObjectRef<ApiKeyRotation>,
    n: usize,
) {
    let ns = obj.namespace.as_deref().unwrap_or_default();
    ctx.metrics.nudges_refused(ns, &obj.name, n as u64);
    let (first_for_rotation, first_for_namespace) = ctx.memory.nudges_refused(obj);
    let why = "the API refused to patch pods (RBAC lacks `patch` on pods): keyrotor cannot nudge \
               consumers, so each step waits for kubelet to sync their volumes (60-90 s) instead of \
               seconds; grant `patch` on pods (the chart's role does)";
    if first_for_namespace {
        warn!(refused = n, "{why}");
    }
    if first_for_rotation {
        let reason = events::NUDGE_FORBIDDEN;
        emit(&ctx.recorder, rot, EventType::Warning, reason, why).await;
    }
}
