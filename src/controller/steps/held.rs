//! A hook held a step: it answered "not yet" (HTTP 202) or refused (a 4xx),
//! or such an answer still stands. Neither is a failure and neither is
//! acceptance: the plan stopped at the step (every prefix of a plan is
//! safe, as for a failed call), every key stays valid, and the reconcile
//! succeeds without backoff.
//!
//! - **pending**: `Progressing=True WaitingForHook` and a Normal
//!   `HookPending` event say what the hook answered and when keyrotor asks
//!   again; the rotation is looked at again then (`retryAfterSeconds`).
//! - **refused**: `Ready=False HookRefused` and a Warning event say what
//!   to fix; `status.hookRefusal` keeps the refusal, so that no process asks
//!   again while the spec and `keyrotor.dev/retry-hook` stay as they were.
//!
//! The stall the plan found (e.g. `HookStalled` after `progressDeadline`)
//! is said as the plan says it.

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;

use super::apply::Applied;
use super::status::{self, Said};
use crate::api::ApiKeyRotation;
use crate::conditions::{events, reasons, types};
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::events::emit;
use crate::controller::hook::{HoldKind, HookHold};
use crate::rotation::{ConditionState, EventType, Plan};
use crate::wire::RETRY_HOOK;

/// Reports the step `hold` names and when to look again.
pub async fn held(
    rot: &ApiKeyRotation,
    ctx: &Context,
    decided: &Plan,
    applied: &Applied,
    hold: &HookHold,
    now: Timestamp,
) -> Result<Requeue> {
    let obj = ObjectRef::from_obj(rot);
    ctx.memory
        .nudges_sent(&obj, &decided.actions[..applied.ran], now);
    let message = hold.message(&rot.namespace().unwrap_or_default(), &rot.name_any());
    let retry_token = rot.annotations().get(RETRY_HOOK).map(String::as_str);
    let (said, refusal) = match hold.answer {
        HoldKind::Pending { .. } => {
            let said = Said {
                condition: types::PROGRESSING,
                kind: EventType::Normal,
                event_reason: events::HOOK_PENDING,
                message: &message,
            };
            // A refusal asked again and now pending stays recorded until done.
            let kept = rot.status.as_ref().and_then(|s| s.hook_refusal.clone());
            (said, kept)
        }
        HoldKind::Refused { .. } => {
            let said = Said {
                condition: types::READY,
                kind: EventType::Warning,
                event_reason: events::HOOK_REFUSED,
                message: &message,
            };
            (said, hold.record(rot.metadata.generation, retry_token))
        }
    };
    let states = answered(&decided.report.conditions, &said);
    status::held(rot, ctx, &states, refusal, said, now).await?;
    // The plan announces a new stall once; its other events wait for its
    // writes.
    for e in decided
        .events
        .iter()
        .filter(|e| events::STALLS.contains(&e.reason))
    {
        emit(&ctx.recorder, rot, e.kind, e.reason, &e.note).await;
    }
    ctx.memory.succeeded(&obj);
    ctx.metrics.reconcile_ok();
    Ok(Requeue::requeue(super::until(
        decided,
        again(ctx, &obj, hold, now),
        now,
    )))
}

/// The plan's conditions, with the one `said` names saying what the hook
/// answered.
fn answered(conditions: &[ConditionState], said: &Said<'_>) -> Vec<ConditionState> {
    let reason = match said.condition {
        types::READY => reasons::HOOK_REFUSED,
        _ => reasons::WAITING_FOR_HOOK,
    };
    let mut states: Vec<ConditionState> = conditions
        .iter()
        .filter(|c| c.type_ != said.condition)
        .cloned()
        .collect();
    let at = conditions
        .iter()
        .position(|c| c.type_ == said.condition)
        .unwrap_or(states.len());
    states.insert(
        at.min(states.len()),
        ConditionState {
            type_: said.condition,
            // Pending: in flight; refused: not ready.
            status: said.condition != types::READY,
            reason,
            message: said.message.to_string(),
        },
    );
    states
}

/// When the held step is asked again by itself: a pending answer at its
/// time; a refusal never (a change of the spec or of the annotation wakes
/// the rotation).
fn again(
    ctx: &Context,
    obj: &ObjectRef<ApiKeyRotation>,
    hold: &HookHold,
    now: Timestamp,
) -> Option<Timestamp> {
    match hold.answer {
        HoldKind::Pending { .. } => ctx.memory.standing_pending(obj, now).map(|(_, t)| t),
        HoldKind::Refused { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &'static str, status: bool, reason: &'static str) -> ConditionState {
        ConditionState {
            type_,
            status,
            reason,
            message: "m".into(),
        }
    }

    #[test]
    fn the_answer_takes_the_place_of_its_condition_and_the_others_stay() {
        let plan = [
            cond(types::READY, true, reasons::ROTATING),
            cond(types::PROGRESSING, true, reasons::WAITING_FOR_VERIFIERS),
            cond(types::MIGRATION_STALLED, true, reasons::HOOK_STALLED),
        ];
        let said = |condition| Said {
            condition,
            kind: EventType::Normal,
            event_reason: events::HOOK_PENDING,
            message: "the hook said",
        };
        let pending = answered(&plan, &said(types::PROGRESSING));
        assert_eq!(pending[0], plan[0]);
        assert_eq!(
            (
                pending[1].status,
                pending[1].reason,
                pending[1].message.as_str()
            ),
            (true, reasons::WAITING_FOR_HOOK, "the hook said")
        );
        assert_eq!(pending[2], plan[2], "HookStalled still applies");
        let refused = answered(&plan, &said(types::READY));
        assert_eq!(
            (refused[0].type_, refused[0].status, refused[0].reason),
            (types::READY, false, reasons::HOOK_REFUSED)
        );
        assert_eq!(&refused[1..], &plan[1..]);
    }
}
