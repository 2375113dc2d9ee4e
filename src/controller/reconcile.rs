//! One reconcile of an ApiKeyRotation, as a pipeline of named steps (see
//! [`reconcile_live`]), and the deletion policy at work on deletion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::apply::{Writer, cleanup};
use super::context::Context;
use super::error::{Error, Result};
use super::events::emit;
use super::observe::{Snapshot, observe};
use super::render::Layout;
use super::{freshness, repair, status};
use crate::api::{ApiKeyRotation, DeletionPolicy, validate};
use crate::conditions::{events, reasons};
use crate::rotation::{EventType, Plan, plan};
use crate::wire::FINALIZER;

/// Even with nothing scheduled, look again this often (a missed watch event
/// can delay a step by at most this much).
const RESYNC: Duration = Duration::from_secs(3600);
/// How soon to look again when the pod cache lagged behind a decision.
const STALE_RETRY: Duration = Duration::from_secs(1);
/// How long to wait before re-checking a Secret name clash.
const CONFLICT_RETRY: Duration = Duration::from_secs(300);
/// Never requeue sooner than this (a wake-up due now still yields to others).
const MIN_REQUEUE: Duration = Duration::from_millis(200);

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
    // Whatever failed, the retry reads the rotation's Secrets from the API.
    ctx.secrets
        .forget(obj.namespace.as_deref().unwrap_or_default(), &obj.name);
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

/// One reconcile of a live rotation. Each step is pure or I/O:
///
/// 1. **latest** (pure): the cached rotation, with the status this process
///    last wrote when the cache does not show it yet.
/// 2. **validate** (pure): spec → policy. An invalid spec blocks: `Ready=False`
///    and an event say what to fix; every key stays as it is.
/// 3. **observe** (I/O): the rotation's Secrets (one LIST, from the API
///    server's cache when it shows every write keyrotor made), its consumer pods
///    (from the cache, with the nudges this process sent, which the cache
///    may not show yet; `observe::consumers`), workloads, requests, status record; a version Secret
///    the list lacks is read again before it counts as lost. A projected
///    Secret of the same name owned by someone else blocks.
/// 4. **detect tampering** (pure): projected Secrets edited by hand are
///    flagged, so the plan rewrites them from what consumers were given.
/// 5. **plan** (pure, [`crate::rotation::plan`]): the ordered writes (among
///    them re-creating a lost version Secret from a projection), events,
///    status report and wake-up.
/// 6. **freshness** (I/O when needed): a promote or retire step decided on a
///    pod cache that may lag behind the Secret write it counts on is planned
///    again on freshly listed pods, and deferred if the decision changes.
/// 7. **apply** (I/O): the writes in order, stopping at the first failure
///    (every prefix of a plan is safe); returns the versions it created.
/// 8. **status** (pure): the plan's report, with the fingerprints apply
///    returned.
/// 9. **report** (I/O): events, beside the status write, which happens only
///    if the status changed (I8).
/// 10. **requeue** (pure): at the plan's wake-up, bounded by the resync.
async fn reconcile_live(cached: &ApiKeyRotation, ctx: &Context) -> Result<Requeue> {
    let now = Timestamp::now();
    let latest = latest(cached, ctx);
    let rot = latest.as_ref().unwrap_or(cached);
    let validated = match validate::validate(&rot.name_any(), &rot.spec) {
        Ok(v) => v,
        Err(invalid) => {
            let msg = format!("fix the spec: {invalid}");
            let (reason, event) = (reasons::INVALID_SPEC, events::INVALID_SPEC);
            status::blocked(rot, ctx, reason, event, &msg, now).await?;
            return Ok(Requeue::await_change());
        }
    };
    let started = Instant::now();
    let mut obs = observe(rot, &validated, ctx).await?;
    let observed = started.elapsed();
    if !obs.conflicts.is_empty() {
        let msg = format!(
            "Secret {} already exists and is not owned by this ApiKeyRotation; keyrotor never writes Secrets it does not own: rename it in spec.secrets or delete it",
            obs.conflicts.join(", ")
        );
        let (reason, event) = (reasons::SECRET_CONFLICT, events::SECRET_CONFLICT);
        status::blocked(rot, ctx, reason, event, &msg, now).await?;
        return Ok(Requeue::requeue(CONFLICT_RETRY));
    }
    let key = ObjectRef::from_obj(rot);
    let writer = writer(rot, &validated, ctx, now);
    repair::detect_tampering(&writer.layout, &mut obs, validated.policy.combined, now);
    let decided = plan(&validated.policy, &obs.observed, now);
    let Some(decided) = fresh(decided, rot, &validated, ctx, &mut obs, now).await? else {
        return Ok(Requeue::requeue(STALE_RETRY));
    };
    let planned = started.elapsed();
    let applied = match writer.apply(&decided.actions, &mut obs).await {
        Err(e @ Error::Hook { .. }) => {
            // Say what failed and what to fix; the error backs off and retries.
            let msg = format!(
                "{e}; retrying with backoff. Every key stays valid; no presenter gets a version before the hook accepted it, and none is removed from the hook before every presenter moved off it"
            );
            status::blocked(
                rot,
                ctx,
                reasons::HOOK_FAILED,
                events::HOOK_FAILED,
                &msg,
                now,
            )
            .await?;
            return Err(e);
        }
        other => other?,
    };
    let wrote = started.elapsed();
    ctx.nudges.sent(&key, &decided.actions, now);
    if applied.nudges_refused > 0 {
        nudges_refused(rot, ctx, &key, applied.nudges_refused).await;
    }
    if applied.writes > 0 {
        let (writes, stage, current) =
            (applied.writes, decided.report.stage, decided.report.current);
        info!(writes, ?stage, ?current, "applied plan");
    }
    let status = status::of_plan(&decided, &applied.created, rot, now);
    ctx.metrics.observe(
        &rot.namespace().unwrap_or_default(),
        &rot.name_any(),
        &status,
        &validated.policy,
    );
    let deferred = report(rot, ctx, &decided, status).await?;
    let secrets = obs.secrets_read.as_str();
    ctx.metrics.secrets_read(secrets);
    phases(
        observed,
        planned,
        wrote,
        started.elapsed(),
        applied.writes,
        secrets,
    );
    let revoked = &validated.policy.revoked;
    for note in ctx.stale_clients.news(&key, revoked, &obs.gateway_traffic) {
        let reason = events::RETIRED_KEY_PRESENTED;
        emit(&ctx.recorder, rot, EventType::Warning, reason, &note).await;
    }
    ctx.succeeded(&key);
    ctx.metrics.reconcile_ok();
    Ok(requeue(&decided, deferred, now))
}

/// The API refused nudges (403): without `pods patch` every step waits for
/// kubelet's periodic sync (60–90 s) instead of seconds. Said once per
/// namespace in the log and once per rotation in an event; counted in
/// `keyrotor_nudges_refused_total`.
async fn nudges_refused(
    rot: &ApiKeyRotation,
    ctx: &Context,
    key: &ObjectRef<ApiKeyRotation>,
    n: usize,
) {
    let (first_for_rotation, first_for_namespace) = ctx.nudges_refused(key, n);
    let why = "the API refused to patch pods (RBAC lacks `patch` on pods): keyrotor cannot nudge \
               consumers, so each step waits for kubelet to sync their volumes (60-90 s) instead of \
               seconds; grant `patch` on pods (the chart's role does)";
    if first_for_namespace {
        warn!(refused = n, "{why}");
    }
    if first_for_rotation {
        emit(
            &ctx.recorder,
            rot,
            EventType::Warning,
            events::NUDGE_FORBIDDEN,
            why,
        )
        .await;
    }
}

/// Where one reconcile's time went, cumulative from the start of observe:
/// each phase is mostly API round trips (the bench reads these lines, see
/// docs/performance.md).
fn phases(
    observed: Duration,
    planned: Duration,
    wrote: Duration,
    done: Duration,
    writes: usize,
    secrets: &str,
) {
    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    debug!(
        observe_ms = ms(observed),
        fresh_ms = ms(planned - observed),
        apply_ms = ms(wrote - planned),
        report_ms = ms(done - wrote),
        writes,
        secrets,
        "reconcile phases"
    );
}

/// Step 1: the cached rotation with the status this process just wrote, if
/// the cache does not show it yet (`None`: the cache is current).
fn latest(cached: &ApiKeyRotation, ctx: &Context) -> Option<ApiKeyRotation> {
    ctx.newer_status(cached).map(|status| {
        let mut r = cached.clone();
        r.status = Some(status);
        r
    })
}

/// Everything apply needs for this rotation.
fn writer<'a>(
    rot: &'a ApiKeyRotation,
    validated: &'a validate::Validated,
    ctx: &'a Context,
    now: Timestamp,
) -> Writer<'a> {
    let (ns, name) = (
        rot.metadata.namespace.as_deref().unwrap_or_default(),
        rot.metadata.name.as_deref().unwrap_or_default(),
    );
    Writer {
        client: ctx.client.clone(),
        namespace: ns,
        rotation: name,
        layout: Layout {
            rotation: name,
            namespace: ns,
            owner: rot.controller_owner_ref(&()).unwrap_or_default(),
            verifier_secret: &validated.verifier_secret,
            presenter_secret: &validated.presenter_secret,
            format: validated.verifier_format,
        },
        key_spec: &validated.key,
        now,
        uid: rot.metadata.uid.as_deref().unwrap_or_default(),
        hook: validated.verifier_hook.as_ref(),
        known: &ctx.secrets,
        issuer: validated.issuer_hook.as_ref(),
    }
}

/// Step 6: `decided` if the pods it counted on are fresh enough, else the
/// plan on freshly listed pods if it decides the same; `None` when the cache
/// lags behind the Secrets (wait for it rather than decide on it).
async fn fresh(
    decided: Plan,
    rot: &ApiKeyRotation,
    validated: &validate::Validated,
    ctx: &Context,
    obs: &mut Snapshot,
    now: Timestamp,
) -> Result<Option<Plan>> {
    let Some(dep) = freshness::dependency(&decided, obs)
        .filter(|dep| !freshness::witnessed(dep, &obs.observed))
    else {
        return Ok(Some(decided));
    };
    let ns = rot.namespace().unwrap_or_default();
    let pods = freshness::pods_since(&ctx.client, &ns, &dep.resource_version).await?;
    super::observe::consumers(rot, validated, ctx, &pods, &mut obs.observed).await?;
    let again = plan(&validated.policy, &obs.observed, now);
    if freshness::same_decision(&decided, &again) {
        Ok(Some(again))
    } else {
        info!(stage = ?decided.report.stage, "pod cache behind the Secrets; step deferred");
        Ok(None)
    }
}

/// Step 9: the plan's events in order, beside the status write. Returns when
/// to look again for a held-back progress update.
async fn report(
    rot: &ApiKeyRotation,
    ctx: &Context,
    decided: &Plan,
    status: crate::api::ApiKeyRotationStatus,
) -> Result<Option<Duration>> {
    let events = async {
        for e in &decided.events {
            emit(&ctx.recorder, rot, e.kind, e.reason, &e.note).await;
            ctx.metrics.event(e.reason);
        }
    };
    let ((), deferred) = futures::join!(events, status::write_status(rot, ctx, status));
    deferred
}

/// Step 10: at the plan's wake-up or a held-back status write, whichever is
/// first, and at least once per [`RESYNC`].
fn requeue(decided: &Plan, deferred: Option<Duration>, now: Timestamp) -> Requeue {
    let wake = decided
        .wake_at
        .map(|t| Duration::from_millis(t.duration_since(now).as_millis().max(0) as u64 + 1));
    let wait = [wake, deferred, Some(RESYNC)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(RESYNC);
    Requeue::requeue(wait.max(MIN_REQUEUE))
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
