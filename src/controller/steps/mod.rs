//! One reconcile of an ApiKeyRotation, as a pipeline of named steps, each
//! taking the value the one before it returned (see [`reconcile_live`]),
//! and the deletion policy at work on deletion (`delete`).

mod apply;
mod consumers;
mod copies;
mod delete;
mod fresh;
mod held;
mod observe;
mod report;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, warn};

use super::context::Context;
use super::error::{Error, Result};
use super::objects::material::Material;
use super::objects::render::Layout;
use super::objects::repair;
use crate::api::{ApiKeyRotation, validate};
use crate::conditions::{events, reasons, types};
use crate::controller::events::emit;
use crate::controller::hook::HookHold;
use crate::rotation::{Plan, plan};
use crate::wire::{FINALIZER, RETRY_HOOK};
use apply::{Applied, Writer};
use observe::{Snapshot, observe};
use status::Blocked;

/// Even with nothing scheduled, look again this often (a missed watch event
/// can delay a step by at most this much).
const RESYNC: Duration = Duration::from_secs(3600);
/// How soon to look again when the pod cache lagged behind a decision.
const STALE_RETRY: Duration = Duration::from_secs(1);
/// How long to wait before re-checking a Secret name clash.
const CONFLICT_RETRY: Duration = Duration::from_secs(300);
/// Never requeue sooner than this (a wake-up due now still yields to others).
const MIN_REQUEUE: Duration = Duration::from_millis(200);
/// How soon to look again while the pod cache has not listed the pods yet.
const CACHE_WAIT: Duration = Duration::from_millis(250);

#[tracing::instrument(skip_all, fields(namespace = rot.namespace().unwrap_or_default(), name = rot.name_any()))]
pub async fn reconcile(rot: Arc<ApiKeyRotation>, ctx: Arc<Context>) -> Result<Requeue> {
    let _timer = ctx.metrics.reconcile_started();
    let ns = rot.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ApiKeyRotation> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, rot, |event| async {
        match event {
            Finalize::Apply(rot) => reconcile_live(&rot, &ctx).await,
            Finalize::Cleanup(rot) => delete::delete(&rot, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(rot: Arc<ApiKeyRotation>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let obj = ObjectRef::from_obj(rot.as_ref());
    ctx.memory.failed(&obj);
    // A conflict means a stale view: re-read soon (see `Memory::conflict_backoff`).
    // Everything else (429, 5xx, timeouts, …) backs off exponentially.
    let delay = if err.is_conflict() {
        ctx.memory.conflict_backoff(&obj)
    } else {
        ctx.memory.backoff(&obj)
    };
    ctx.metrics.reconcile_failed(err.category());
    warn!(category = err.category(), error = %err, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// One reconcile of a live rotation. Each step is pure or I/O, and hands
/// its value to the next:
///
/// 0. **wait** for the pod cache's first full list (after a start or an
///    outage): until then no group can be observed.
/// 1. **latest** (pure): the cached rotation, with the status this process
///    last wrote when the cache does not show it yet.
/// 2. **validate** (pure): spec → policy. An invalid spec blocks: `Ready=False`
///    and an event say what to fix; every key stays as it is.
/// 3. **observe** (I/O, `observe`, `consumers`): the rotation's Secrets (one
///    LIST, from the API server's cache when it shows every write keyrotor
///    made), its consumer pods (from the cache, with the nudges this process
///    sent, which the cache may not show yet), workloads, requests, status
///    record → a `Snapshot`. A version Secret the list lacks is read again
///    before it counts as lost. A projected Secret of the same name owned by
///    someone else blocks.
/// 4. **detect tampering** (pure, `objects::repair`): projected Secrets edited
///    by hand are flagged, so the plan rewrites them from what consumers were
///    given.
/// 5. **plan** (pure, [`crate::rotation::plan`]): the ordered writes (among
///    them re-creating a lost version Secret from a projection), events,
///    status report and wake-up.
/// 6. **fresh** (I/O when needed): a promote or retire step decided on a pod
///    cache that may lag behind the Secret write it counts on is planned
///    again on freshly listed pods, and deferred if the decision changes.
/// 7. **apply** (I/O): the writes in order, stopping at the first failure
///    (every prefix of a plan is safe), on the snapshot's material →
///    `Applied` (the versions it created). A hook that holds a step
///    (pending, refused) stops it too, and `held` reports that instead of
///    the plan.
/// 8. **report** (I/O, `report`): the status of the plan with the
///    fingerprints apply returned, written only if it changed (I8), beside
///    the plan's events; metrics.
/// 9. **requeue** (pure): at the plan's wake-up, bounded by the resync.
async fn reconcile_live(cached: &ApiKeyRotation, ctx: &Context) -> Result<Requeue> {
    // Before the pod watch's first list, every group would look empty: no
    // consumers, no refusals. Missing evidence is never an observation, so
    // nothing is planned (or said) on it.
    if !ctx.pods.is_ready() {
        return Ok(Requeue::requeue(CACHE_WAIT));
    }
    let now = Timestamp::now();
    let latest = latest(cached, ctx);
    let rot = latest.as_ref().unwrap_or(cached);
    let validated = match validate::validate(&rot.name_any(), &rot.spec) {
        Ok(v) => v,
        Err(invalid) => {
            let message = &format!("fix the spec: {invalid}");
            let (reason, event_reason) = (reasons::INVALID_SPEC, events::INVALID_SPEC);
            let why = Blocked {
                reason,
                event_reason,
                message,
            };
            status::blocked(rot, ctx, why, None, now).await?;
            return Ok(Requeue::await_change());
        }
    };
    // Other namespaces are decided on only once their caches listed.
    let Some(reached) = copies::reached(rot, &validated, ctx) else {
        return Ok(Requeue::requeue(CACHE_WAIT));
    };
    if !reached.targets.refused.is_empty() {
        return refused(rot, ctx, &reached.targets.refused, now).await;
    }
    let mut clock = Phases::start();
    let snap = observe(rot, &validated, ctx, reached).await?;
    clock.observed = clock.started.elapsed();
    if !snap.conflicts.is_empty() {
        return conflict(rot, ctx, &snap.conflicts, now).await;
    }
    let writer = writer(rot, &validated, ctx, now);
    let combined = validated.policy.combined;
    let observed =
        repair::detect_tampering(&writer.layout, snap.observed, &snap.material, combined, now);
    let snap = Snapshot { observed, ..snap };
    let decided = plan(&validated.policy, &snap.observed, now);
    let Some((decided, snap)) = fresh::fresh(decided, snap, rot, &validated, ctx, now).await?
    else {
        return Ok(Requeue::requeue(STALE_RETRY));
    };
    clock.planned = clock.started.elapsed();
    let applied = apply(
        &writer,
        &decided,
        snap.material,
        &snap.reached,
        rot,
        ctx,
        now,
    )
    .await?;
    if let Some(hold) = &applied.held {
        return held::held(rot, ctx, &decided, &applied, hold, now).await;
    }
    clock.wrote = clock.started.elapsed();
    let writes = applied.writes;
    let deferred = report::report(rot, ctx, &validated, &decided, applied, now).await?;
    ctx.metrics.secrets_read(snap.secrets_read.as_str());
    clock.log(writes, snap.secrets_read.as_str());
    ctx.memory.succeeded(&ObjectRef::from_obj(rot));
    ctx.metrics.reconcile_ok();
    Ok(requeue(&decided, deferred, now))
}

/// Step 1: the cached rotation with the status this process just wrote, if
/// the cache does not show it yet (`None`: the cache is current).
fn latest(cached: &ApiKeyRotation, ctx: &Context) -> Option<ApiKeyRotation> {
    ctx.memory.newer_status(cached).map(|status| {
        let mut r = cached.clone();
        r.status = Some(status);
        r
    })
}

/// A projected Secret of the same name belongs to someone else: nothing moves.
async fn conflict(
    rot: &ApiKeyRotation,
    ctx: &Context,
    conflicts: &[String],
    now: Timestamp,
) -> Result<Requeue> {
    let message = format!(
        "Secret {} already exists and is not owned by this ApiKeyRotation; keyrotor never writes Secrets it does not own: rename it in spec.secrets or delete it",
        conflicts.join(", ")
    );
    let reasons = (reasons::SECRET_CONFLICT, events::SECRET_CONFLICT);
    hold(rot, ctx, reasons, &message, now).await
}

/// A namespace the rotation must write to did not agree (or cannot be
/// reached): nothing moves, nothing is written anywhere.
async fn refused(
    rot: &ApiKeyRotation,
    ctx: &Context,
    refusals: &[String],
    now: Timestamp,
) -> Result<Requeue> {
    let reasons = (reasons::TARGET_NOT_PERMITTED, events::TARGET_NOT_PERMITTED);
    hold(rot, ctx, reasons, &refusals.join("; "), now).await
}

/// Something only the user can fix holds the rotation where it stands:
/// `Ready=False` and an event say what; looked at again now and then (a
/// watch event on the Secret or Namespace wakes it sooner).
async fn hold(
    rot: &ApiKeyRotation,
    ctx: &Context,
    (reason, event_reason): (&'static str, &'static str),
    message: &str,
    now: Timestamp,
) -> Result<Requeue> {
    let why = Blocked {
        reason,
        event_reason,
        message,
    };
    status::blocked(rot, ctx, why, None, now).await?;
    Ok(Requeue::requeue(CONFLICT_RETRY))
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
        issuer: validated.issuer_hook.as_ref(),
        memory: &ctx.memory,
        obj: ObjectRef::from_obj(rot),
        copies: &ctx.reach.copies,
        standing: standing(rot, ctx, now),
    }
}

/// The hook answer that still stands: a refusal status records, while
/// `metadata.generation` and `keyrotor.dev/retry-hook` are what they were;
/// else a pending answer before its time.
fn standing(rot: &ApiKeyRotation, ctx: &Context, now: Timestamp) -> Option<HookHold> {
    let retry_token = rot.annotations().get(RETRY_HOOK).map(String::as_str);
    let refused = rot
        .status
        .as_ref()
        .and_then(|s| s.hook_refusal.as_ref())
        .filter(|r| r.in_force(rot.metadata.generation, retry_token))
        .and_then(HookHold::of_record);
    refused.or_else(|| {
        let obj = ObjectRef::from_obj(rot);
        ctx.memory.standing_pending(&obj, now).map(|(hold, _)| hold)
    })
}

/// Step 7: the plan's writes. A hook that failed says what failed and what
/// to fix (`Ready=False HookFailed`), and the stall the plan found (e.g.
/// `HookStalled` once it fails for the progress deadline); the error backs
/// off and retries.
async fn apply(
    writer: &Writer<'_>,
    decided: &Plan,
    material: Material,
    reached: &copies::Reached,
    rot: &ApiKeyRotation,
    ctx: &Context,
    now: Timestamp,
) -> Result<Applied> {
    match writer.apply(&decided.actions, material, reached).await {
        Err(e @ Error::Hook { .. }) => {
            let message = &format!(
                "{e}; retrying with backoff. Every key stays valid; no presenter gets a version before the hook accepted it, and none is removed from the hook before every presenter moved off it"
            );
            let (reason, event_reason) = (reasons::HOOK_FAILED, events::HOOK_FAILED);
            let why = Blocked {
                reason,
                event_reason,
                message,
            };
            let stall = decided
                .report
                .conditions
                .iter()
                .find(|c| c.type_ == types::MIGRATION_STALLED);
            status::blocked(rot, ctx, why, stall, now).await?;
            // The plan announces a new stall once; its other events wait
            // for its writes.
            for e in decided
                .events
                .iter()
                .filter(|e| events::STALLS.contains(&e.reason))
            {
                emit(&ctx.recorder, rot, e.kind, e.reason, &e.note).await;
            }
            Err(e)
        }
        other => other,
    }
}

/// Step 9: at the plan's wake-up or a held-back status write, whichever is
/// first, and at least once per [`RESYNC`].
fn requeue(decided: &Plan, deferred: Option<Duration>, now: Timestamp) -> Requeue {
    let wait = until(decided, None, now);
    Requeue::requeue(deferred.map_or(wait, |d| wait.min(d)).max(MIN_REQUEUE))
}

/// How long until the plan's wake-up or `at`, whichever is first, and at
/// most [`RESYNC`], at least [`MIN_REQUEUE`].
fn until(decided: &Plan, at: Option<Timestamp>, now: Timestamp) -> Duration {
    let wake = [decided.wake_at, at]
        .into_iter()
        .flatten()
        .min()
        .map(|t| Duration::from_millis(t.duration_since(now).as_millis().max(0) as u64 + 1));
    wake.map_or(RESYNC, |w| w.min(RESYNC)).max(MIN_REQUEUE)
}

/// Where one reconcile's time went, cumulative from the start of observe:
/// each phase is mostly API round trips (the bench reads the line this
/// logs, see docs/performance.md).
struct Phases {
    started: Instant,
    observed: Duration,
    planned: Duration,
    wrote: Duration,
}

impl Phases {
    fn start() -> Phases {
        Phases {
            started: Instant::now(),
            observed: Duration::ZERO,
            planned: Duration::ZERO,
            wrote: Duration::ZERO,
        }
    }

    fn log(&self, writes: usize, secrets: &str) {
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        let done = self.started.elapsed();
        debug!(
            observe_ms = ms(self.observed),
            fresh_ms = ms(self.planned - self.observed),
            apply_ms = ms(self.wrote - self.planned),
            report_ms = ms(done - self.wrote),
            writes,
            secrets,
            "reconcile phases"
        );
    }
}
