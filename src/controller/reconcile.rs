//! One reconcile: validate → observe → plan (pure) → apply → events → status.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::apply::{Writer, cleanup};
use super::context::Context;
use super::error::{Error, Result};
use super::observe::{consumers, observe};
use super::render::Layout;
use super::{freshness, repair};
use crate::api::{ApiKeyRotation, ApiKeyRotationStatus, DeletionPolicy, FIELD_MANAGER, validate};
use crate::conditions::{events, reasons, types};
use crate::rotation::{ConditionState, EventType, plan};

/// Finalizer that lets keyrotor apply the deletion policy before the rotation goes.
pub const FINALIZER: &str = "keyrotor.dev/cleanup";
/// Even with nothing scheduled, look again this often (a missed watch event
/// can delay a step by at most this much).
const RESYNC: Duration = Duration::from_secs(3600);
/// Status changes that only report progress inside a step (confirmation
/// counts, what the in-flight step waits for) are written at most this often:
/// a step with many pods would otherwise write status once per report.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// How soon to look again when the pod cache lagged behind a decision.
const STALE_RETRY: Duration = Duration::from_secs(1);
/// How long to wait before re-checking a Secret name clash.
const CONFLICT_RETRY: Duration = Duration::from_secs(300);

#[tracing::instrument(skip_all, fields(namespace = rot.namespace().unwrap_or_default(), name = rot.name_any()))]
pub async fn reconcile(rot: Arc<ApiKeyRotation>, ctx: Arc<Context>) -> Result<Requeue> {
    let _timer = ctx.metrics.reconcile_started();
    let ns = rot.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ApiKeyRotation> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, rot, |event| async {
        match event {
            Finalize::Apply(rot) => reconcile_live(&rot, &ctx).await,
            Finalize::Cleanup(rot) => delete(&rot, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(rot: Arc<ApiKeyRotation>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let obj = ObjectRef::from_obj(rot.as_ref());
    // A conflict means a stale view: re-read soon (see `Context::conflict_backoff`).
    // Everything else (429, 5xx, timeouts, …) backs off exponentially.
    let delay = if err.is_conflict() {
        ctx.conflict_backoff(&obj)
    } else {
        ctx.backoff(&obj)
    };
    ctx.metrics.reconcile_failed(err.category());
    warn!(category = err.category(), error = %err, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

async fn reconcile_live(cached: &ApiKeyRotation, ctx: &Context) -> Result<Requeue> {
    let now = Timestamp::now();
    // The status this process just wrote, if the cache does not show it yet.
    let newer;
    let rot = match ctx.newer_status(cached) {
        Some(status) => {
            let mut r = cached.clone();
            r.status = Some(status);
            newer = r;
            &newer
        }
        None => cached,
    };
    let name = rot.name_any();
    let ns = rot.namespace().unwrap_or_default();
    let validated = match validate::validate(&name, &rot.spec) {
        Ok(v) => v,
        Err(invalid) => {
            // Keys stay as they are; nothing moves until the spec is fixed.
            let msg = format!("fix the spec: {invalid}");
            blocked(
                rot,
                ctx,
                reasons::INVALID_SPEC,
                events::INVALID_SPEC,
                &msg,
                now,
            )
            .await?;
            return Ok(Requeue::await_change());
        }
    };
    let mut obs = observe(rot, &validated, ctx).await?;
    if !obs.conflicts.is_empty() {
        let msg = format!(
            "Secret {} already exists and is not owned by this ApiKeyRotation; keyrotor never writes Secrets it does not own: rename it in spec.secrets or delete it",
            obs.conflicts.join(", ")
        );
        blocked(
            rot,
            ctx,
            reasons::SECRET_CONFLICT,
            events::SECRET_CONFLICT,
            &msg,
            now,
        )
        .await?;
        return Ok(Requeue::requeue(CONFLICT_RETRY));
    }
    let writer = Writer {
        client: ctx.client.clone(),
        namespace: &ns,
        rotation: &name,
        layout: Layout {
            rotation: &name,
            namespace: &ns,
            owner: rot.controller_owner_ref(&()).unwrap_or_default(),
            verifier_secret: &validated.verifier_secret,
            presenter_secret: &validated.presenter_secret,
            format: validated.verifier_format,
        },
        key_spec: &validated.key,
        now,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for v in repair::recover_versions(&secrets, &writer.layout, &mut obs, now).await? {
        let note = format!(
            "version {v}'s Secret was deleted; re-created from the projected Secret that still holds its key (same key, same fingerprint)"
        );
        warn!(version = v, "version Secret restored from a projection");
        publish(ctx, rot, EventType::Warning, events::KEY_RECOVERED, &note).await;
    }
    repair::detect_tampering(&writer.layout, &mut obs, validated.policy.combined, now);
    let mut plan = plan(&validated.policy, &obs.observed, now);
    let unwitnessed =
        freshness::dependency(&plan, &obs).filter(|dep| !freshness::witnessed(dep, &obs.observed));
    if let Some(dep) = unwitnessed {
        let pods = freshness::pods_since(&ctx.client, &ns, &dep.resource_version).await?;
        consumers(rot, &validated, ctx, &pods, &mut obs.observed).await?;
        let fresh = crate::rotation::plan(&validated.policy, &obs.observed, now);
        if !freshness::same_decision(&plan, &fresh) {
            // The cache lags behind the Secrets: wait for it rather than decide on it.
            info!(stage = ?plan.report.stage, "pod cache behind the Secrets; step deferred");
            return Ok(Requeue::requeue(STALE_RETRY));
        }
        plan = fresh;
    }
    let writes = writer.apply(&plan.actions, &mut obs).await?;
    if writes > 0 {
        info!(writes, stage = ?plan.report.stage, current = ?plan.report.current, "applied plan");
    }
    // Events go out in order, beside the status write rather than before it.
    let events = async {
        for e in &plan.events {
            publish(ctx, rot, e.kind, e.reason, &e.note).await;
            ctx.metrics.event(e.reason);
        }
    };
    let mut status = ApiKeyRotationStatus::from_report(
        &plan.report,
        rot.meta().generation,
        rot.status.as_ref(),
        now,
    );
    // Versions created just now: the planner could not know their fingerprints.
    for v in status
        .versions
        .iter_mut()
        .filter(|v| v.fingerprint.is_empty())
    {
        if let Some(key) = obs.keys.get(&v.version) {
            v.fingerprint = key.fingerprint();
        }
    }
    ctx.metrics.observe(&ns, &name, &status);
    let ((), deferred) = futures::join!(events, write_status(rot, ctx, status));
    let deferred = deferred?;
    ctx.succeeded(&ObjectRef::from_obj(rot));
    ctx.metrics.reconcile_ok();
    let wait = plan
        .wake_at
        .map(|t| Duration::from_millis(t.duration_since(now).as_millis().max(0) as u64 + 1))
        .unwrap_or(RESYNC)
        .min(RESYNC)
        .min(deferred.unwrap_or(RESYNC));
    Ok(Requeue::requeue(wait.max(Duration::from_millis(200))))
}

/// Writes status only when it changed (I8); a change of progress alone (see
/// [`progress_only`]) waits for `PROGRESS_INTERVAL` (the returned delay says
/// when to look again), and the next step's status carries it anyway.
async fn write_status(
    rot: &ApiKeyRotation,
    ctx: &Context,
    status: ApiKeyRotationStatus,
) -> Result<Option<Duration>> {
    if rot.status.as_ref() == Some(&status) {
        return Ok(None);
    }
    let key = ObjectRef::from_obj(rot);
    if let (Some(old), Some(since)) = (rot.status.as_ref(), ctx.since_status_write(&key))
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
    ctx.status_written(&key, &status, written.resource_version().as_deref());
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
async fn blocked(
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
    publish(ctx, rot, EventType::Warning, event_reason, message).await;
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

async fn publish(ctx: &Context, rot: &ApiKeyRotation, kind: EventType, reason: &str, note: &str) {
    // An event is best effort: losing one must not fail or repeat a rotation step.
    if let Err(e) = ctx
        .recorder
        .publish(kind, reason, note, &rot.object_ref(&()))
        .await
    {
        warn!(reason, error = %e, "could not publish event");
    }
}

/// Whether namespace `ns` is being deleted (false when that cannot be read).
async fn namespace_terminating(ctx: &Context, ns: &str) -> bool {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    matches!(api.get_opt(ns).await, Ok(Some(n)) if n.metadata.deletion_timestamp.is_some())
}

async fn delete(rot: &ApiKeyRotation, ctx: &Context) -> Result<Requeue> {
    let ns = rot.namespace().unwrap_or_default();
    let orphan = rot.spec.deletion_policy == DeletionPolicy::Orphan;
    let projected = [
        rot.spec.secrets.verifier.as_str(),
        rot.spec.secrets.presenter.as_str(),
    ];
    let done = cleanup(
        ctx.client.clone(),
        &ns,
        &rot.name_any(),
        &rot.uid().unwrap_or_default(),
        orphan,
        &projected,
    )
    .await;
    match done {
        // Namespaced mode: deleting the namespace also deletes the Role that
        // lets keyrotor in, often before this finalizer runs. Holding on
        // would block the namespace forever. Letting go loses nothing when
        // the namespace is going (everything in it goes), or with Delete
        // (every Secret keyrotor made is owned by the rotation, so garbage
        // collection deletes it). Orphan in a namespace that stays cannot
        // be honoured without access: keep retrying, and say why.
        Err(Error::Kube(kube::Error::Api(e)))
            if e.code == 403 && (!orphan || namespace_terminating(ctx, &ns).await) =>
        {
            warn!(error = %e, "no access to clean up; the namespace is being deleted or garbage collection deletes the rotation's Secrets");
        }
        other => other?,
    }
    ctx.metrics.forget(&ns, &rot.name_any());
    ctx.forget(&ObjectRef::from_obj(rot));
    info!(policy = ?rot.spec.deletion_policy, "rotation deleted; Secrets cleaned up");
    Ok(Requeue::await_change())
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
