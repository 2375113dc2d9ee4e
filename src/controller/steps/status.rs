//! Status: built from the plan's report (pure), written only when it changed
//! (I8), with progress inside a step coalesced; and the `Ready=False` status
//! of a rotation that cannot move (invalid spec, Secret clash).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use crate::api::{ApiKeyRotation, ApiKeyRotationStatus};
use crate::conditions::types;
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::events::emit;
use crate::rotation::{ConditionState, EventType, Plan, Version};
use crate::wire::FIELD_MANAGER;

/// Status changes that only report progress inside a step (confirmation
/// counts, what the in-flight step waits for) are written at most this often:
/// a step with many pods would otherwise write status once per report.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// The status a plan reports. `created` holds the fingerprints of the
/// versions apply just created, which the planner could not know.
pub fn of_plan(
    plan: &Plan,
    created: &BTreeMap<Version, String>,
    rot: &ApiKeyRotation,
    now: Timestamp,
) -> ApiKeyRotationStatus {
    let mut status = ApiKeyRotationStatus::from_report(
        &plan.report,
        rot.meta().generation,
        rot.status.as_ref(),
        now,
    );
    for v in status
        .versions
        .iter_mut()
        .filter(|v| v.fingerprint.is_empty())
    {
        if let Some(fingerprint) = created.get(&v.version) {
            v.fingerprint = fingerprint.clone();
        }
    }
    status
}

/// Writes status only when it changed (I8); a change of progress alone (see
/// [`progress_only`]) waits for `PROGRESS_INTERVAL` (the returned delay says
/// when to look again), and the next step's status carries it anyway.
pub async fn write_status(
    rot: &ApiKeyRotation,
    ctx: &Context,
    status: ApiKeyRotationStatus,
) -> Result<Option<Duration>> {
    if rot.status.as_ref() == Some(&status) {
        return Ok(None);
    }
    let key = ObjectRef::from_obj(rot);
    if let (Some(old), Some(since)) = (rot.status.as_ref(), ctx.memory.since_status_write(&key))
        && progress_only(old, &status)
        && since < PROGRESS_INTERVAL
    {
        return Ok(Some(PROGRESS_INTERVAL - since));
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (old, new) = (
            serde_json::to_value(&rot.status).unwrap_or_default(),
            serde_json::to_value(&status).unwrap_or_default(),
        );
        let changed: Vec<&String> = new
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| old.get(k.as_str()) != Some(v))
            .map(|(k, _)| k)
            .collect();
        debug!(?changed, old_last = ?old.get("lastRotationTime"), new_last = ?new.get("lastRotationTime"), "writing status");
        if changed.is_empty() {
            debug!(old = ?rot.status, new = ?status, "status differs outside its JSON form");
        }
    }
    let api: Api<ApiKeyRotation> =
        Api::namespaced(ctx.client.clone(), &rot.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": ApiKeyRotation::api_version(&()),
        "kind": ApiKeyRotation::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &rot.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.memory
        .status_written(&key, &status, written.resource_version().as_deref());
    Ok(None)
}

/// Whether `new` differs from `old` only in progress inside the same step:
/// the confirmation counts, and the reason and message of a `Progressing`
/// condition that stays True (e.g. WaitingForPresenters → WaitingForGrace).
/// Stage, versions, the current and accepted keys, `Ready` (what `kubectl get
/// akr` shows) and `MigrationStalled` are never held back.
fn progress_only(old: &ApiKeyRotationStatus, new: &ApiKeyRotationStatus) -> bool {
    let mut moved = old.clone();
    moved.confirmation = new.confirmation.clone();
    let in_flight = |s: &ApiKeyRotationStatus| {
        s.condition(types::PROGRESSING)
            .filter(|c| c.status == "True")
            .cloned()
    };
    if let (Some(_), Some(now)) = (in_flight(old), in_flight(new)) {
        for c in moved
            .conditions
            .iter_mut()
            .filter(|c| c.type_ == types::PROGRESSING)
        {
            *c = now.clone();
        }
    }
    moved == *new
}

/// Reports a reason nothing can move (invalid spec, Secret clash): Ready
/// becomes False with what to fix, once per change, and every key stays valid.
pub async fn blocked(
    rot: &ApiKeyRotation,
    ctx: &Context,
    reason: &'static str,
    event_reason: &'static str,
    message: &str,
    now: Timestamp,
) -> Result<()> {
    let previous = rot.status.clone().unwrap_or_default();
    let generation = rot.meta().generation;
    let already = previous
        .condition(types::READY)
        .is_some_and(|c| c.reason == reason && c.message == message)
        && previous.observed_generation == generation;
    if already {
        return Ok(());
    }
    emit(
        &ctx.recorder,
        rot,
        EventType::Warning,
        event_reason,
        message,
    )
    .await;
    let mut status = previous.clone();
    let ready = ConditionState {
        type_: types::READY,
        status: false,
        reason,
        message: message.to_string(),
    };
    let fresh =
        ApiKeyRotationStatus::from_report_conditions(&[ready], generation, Some(&previous), now);
    status.conditions.retain(|c| c.type_ != types::READY);
    status.conditions.splice(0..0, fresh);
    status.observed_generation = generation;
    write_status(rot, ctx, status).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Stage;

    fn status(stage: Stage, progressing: (&str, &str), ready: &str) -> ApiKeyRotationStatus {
        serde_json::from_value(json!({
            "stage": stage,
            "currentVersion": 1,
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "Rotating", "message": "m",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Progressing", "status": progressing.0, "reason": progressing.1,
                 "message": "Promoting version 2", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn waiting_for_grace_after_presenters_confirmed_is_progress_only() {
        let old = status(Stage::Promoting, ("True", "WaitingForPresenters"), "True");
        let new = status(Stage::Promoting, ("True", "WaitingForGrace"), "True");
        assert!(progress_only(&old, &new));
    }

    #[test]
    fn a_new_stage_a_finished_cycle_or_a_ready_change_is_written_at_once() {
        let old = status(Stage::Promoting, ("True", "WaitingForPresenters"), "True");
        assert!(!progress_only(
            &old,
            &status(Stage::Stable, ("True", "WaitingForPresenters"), "True")
        ));
        assert!(!progress_only(
            &old,
            &status(Stage::Promoting, ("False", "Idle"), "True")
        ));
        assert!(!progress_only(
            &old,
            &status(Stage::Promoting, ("True", "WaitingForPresenters"), "False")
        ));
    }
}
