//! Status: built from the plan's report (pure), written only when it changed
//! (I8), with progress inside a step coalesced; the `Ready=False` status
//! of a rotation that cannot move (invalid spec, Secret clash); and the
//! status of a plan a hook held (pending, refused).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use crate::api::{ApiKeyRotation, ApiKeyRotationStatus, HookRefusal};
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
/// versions apply just created, which the planner could not know; a hook
/// that answered a step done (`hook_done`) clears a recorded refusal.
pub fn of_plan(
    plan: &Plan,
    (created, hook_done): (&BTreeMap<Version, String>, bool),
    rot: &ApiKeyRotation,
    now: Timestamp,
) -> ApiKeyRotationStatus {
    let mut status = ApiKeyRotationStatus::from_report(
        &plan.report,
        rot.meta().generation,
        rot.status.as_ref(),
        now,
    );
    if hook_done {
        status.hook_refusal = None;
    }
    status.set_stalled(rot.status.as_ref(), now);
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
    write(rot, ctx, status, true).await
}

/// Writes status when it changed; progress alone waits if `coalesce`.
async fn write(
    rot: &ApiKeyRotation,
    ctx: &Context,
    status: ApiKeyRotationStatus,
    coalesce: bool,
) -> Result<Option<Duration>> {
    if rot.status.as_ref() == Some(&status) {
        return Ok(None);
    }
    let key = ObjectRef::from_obj(rot);
    if let (Some(old), Some(since)) = (rot.status.as_ref(), ctx.memory.since_status_write(&key))
        && coalesce
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

/// Reports a reason nothing can move (invalid spec, Secret clash, a failing
/// hook): Ready becomes False with what to fix, once per change, and every
/// key stays valid. `stall` is the `MigrationStalled` condition of the plan
/// that could not be applied (a failing hook), so that a stall is said even
/// while nothing can be written.
pub async fn blocked(
    rot: &ApiKeyRotation,
    ctx: &Context,
    why: Blocked<'_>,
    stall: Option<&ConditionState>,
    now: Timestamp,
) -> Result<()> {
    let previous = rot.status.clone().unwrap_or_default();
    let generation = rot.meta().generation;
    let ready = ConditionState {
        type_: types::READY,
        status: false,
        reason: why.reason,
        message: why.message.to_string(),
    };
    let states: Vec<ConditionState> = std::iter::once(ready).chain(stall.cloned()).collect();
    let same = |c: &ConditionState| {
        previous.condition(c.type_).is_some_and(|old| {
            old.reason == c.reason && old.message == c.message && (old.status == "True") == c.status
        })
    };
    let kstatus = previous.condition(types::STALLED).is_some();
    if states.iter().all(same) && previous.observed_generation == generation && kstatus {
        return Ok(());
    }
    if !same(&states[0]) || previous.observed_generation != generation {
        let (kind, reason) = (EventType::Warning, why.event_reason);
        emit(&ctx.recorder, rot, kind, reason, why.message).await;
    }
    let mut status = previous.clone();
    let fresh =
        ApiKeyRotationStatus::from_report_conditions(&states, generation, Some(&previous), now);
    status
        .conditions
        .retain(|c| !states.iter().any(|s| s.type_ == c.type_));
    status.conditions.splice(0..0, fresh);
    status.observed_generation = generation;
    status.set_stalled(Some(&previous), now);
    let (ns, name) = (rot.namespace().unwrap_or_default(), rot.name_any());
    ctx.metrics.observe_conditions(&ns, &name, &status);
    write_status(rot, ctx, status).await.map(drop)
}

/// A hook held a step (pending, refused): the status last written, with
/// the plan's conditions `states` (one of them saying what the hook
/// answered) and `refusal` as `status.hookRefusal`. The other fields stay
/// as they were, as for a failed hook: the plan stopped at the step.
/// `said` (the condition that carries the answer, and its event) is
/// announced when that condition's text or the refusal recorded changes,
/// also across restarts.
/// Written at once: the event and the status say the same.
pub async fn held(
    rot: &ApiKeyRotation,
    ctx: &Context,
    states: &[ConditionState],
    refusal: Option<HookRefusal>,
    said: Said<'_>,
    now: Timestamp,
) -> Result<()> {
    let previous = rot.status.clone().unwrap_or_default();
    let generation = rot.meta().generation;
    // A refusal answered anew (asked again after a change) is news even
    // when it says the same.
    let news = previous.hook_refusal != refusal
        || states
            .iter()
            .filter(|c| c.type_ == said.condition)
            .any(|c| {
                previous.condition(c.type_).is_none_or(|old| {
                    old.reason != c.reason
                        || old.message != c.message
                        || (old.status == "True") != c.status
                })
            });
    if news {
        emit(
            &ctx.recorder,
            rot,
            said.kind,
            said.event_reason,
            said.message,
        )
        .await;
        ctx.metrics.event(said.event_reason);
    }
    let mut status = previous.clone();
    let fresh =
        ApiKeyRotationStatus::from_report_conditions(states, generation, Some(&previous), now);
    status
        .conditions
        .retain(|c| !states.iter().any(|s| s.type_ == c.type_));
    status.conditions.splice(0..0, fresh);
    status.observed_generation = generation;
    status.set_stalled(Some(&previous), now);
    status.hook_refusal = refusal;
    let (ns, name) = (rot.namespace().unwrap_or_default(), rot.name_any());
    ctx.metrics.observe_conditions(&ns, &name, &status);
    write(rot, ctx, status, false).await.map(drop)
}

/// The condition that says what a hook answered, and its event.
pub struct Said<'a> {
    pub condition: &'static str,
    pub kind: EventType,
    pub event_reason: &'static str,
    pub message: &'a str,
}

/// Why a rotation is blocked: the `Ready` reason, the event's reason and
/// the message both carry.
pub struct Blocked<'a> {
    pub reason: &'static str,
    pub event_reason: &'static str,
    pub message: &'a str,
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
