//! Copies of the projected Secrets in other namespaces (docs/namespaces.md):
//! where they must be and what the watches show of them (`reached`), whose
//! a Secret of that name is (`conflicts`), keeping them equal to the
//! rotation's own (`sync`, called by apply right after each projected
//! write, verifier side first), removing those no longer needed (`prune`)
//! or, on deletion, all of them (`cleanup`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info};

use crate::api::{ApiKeyRotation, validate::Validated};
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::objects::copy::{self, Source};
use crate::controller::objects::targets::{self, Ask, Targets};
use crate::controller::reach::{Copies, CopyObs};
use crate::wire::{self as k, FIELD_MANAGER};

/// A copy a namespace must hold, with what the watch last showed of it.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub namespace: String,
    pub name: String,
    /// A copy of the verifier (or combined) Secret: written first.
    pub verifier_side: bool,
    pub seen: Option<Arc<CopyObs>>,
}

/// Where one rotation's Secrets go beyond its namespace.
#[derive(Clone, Debug, Default)]
pub struct Reached {
    pub source: Option<Source>,
    pub targets: Targets,
    pub wanted: Vec<Wanted>,
}

fn source(rot: &ApiKeyRotation) -> Source {
    Source {
        namespace: rot.namespace().unwrap_or_default(),
        rotation: rot.name_any(),
    }
}

/// Where the rotation reaches, as the caches show it; `None` while a cache
/// it needs has not listed yet (nothing is decided on a partial view).
pub fn reached(rot: &ApiKeyRotation, v: &Validated, ctx: &Context) -> Option<Reached> {
    let reach = &ctx.reach;
    let src = source(rot);
    let c = &rot.spec.consumers;
    let spans =
        |g: &crate::api::ConsumerGroup| !g.namespaces.is_empty() || g.namespace_selector.is_some();
    if !spans(&c.verifiers) && !spans(&c.presenters) && reach.copies.of(&src).is_empty() {
        return Some(Reached::default());
    }
    if !reach.namespaces.is_ready() {
        // Said, not waited on in silence: RBAC without `list namespaces`
        // never heals by itself.
        let error = reach.namespace_error()?;
        let mut refused = Reached::default();
        refused.targets.refused.push(format!(
            "keyrotor cannot read Namespaces, so it cannot check that the rotation's target namespaces agreed ({error}): the operator needs get, list and watch on namespaces, cluster-wide (the chart grants them)"
        ));
        return Some(refused);
    }
    if !reach.copies.is_ready() {
        return None;
    }
    let ask = Ask {
        home: &src.namespace,
        rotation: &src.rotation,
        verifier_secret: &v.verifier_secret,
        presenter_secret: &v.presenter_secret,
        verifiers: &c.verifiers,
        presenters: &c.presenters,
        copies: reach.copies.of(&src),
    };
    let found = targets::resolve(&ask, reach.as_ref());
    let mut wanted = Vec::new();
    for (ns, place) in &found.places {
        if reach.pods_in(ns).is_some_and(|p| !p.is_ready()) {
            return None;
        }
        for name in found.secrets(&ask, place) {
            wanted.push(Wanted {
                namespace: ns.clone(),
                name: name.to_string(),
                verifier_side: name == v.verifier_secret,
                seen: reach.copies.get(ns, name),
            });
        }
    }
    // Verifier copies first: the order apply writes them in.
    wanted.sort_by_key(|w| !w.verifier_side);
    Some(Reached {
        source: Some(src),
        targets: found,
        wanted,
    })
}

/// Secrets of a copy's name that keyrotor does not own, as `<ns>/<name>`.
/// A copy the watch has not shown is read by name: absent, ours (the watch
/// lags), or someone else's.
pub async fn conflicts(
    client: &Client,
    copies: &Copies,
    reached: &mut Reached,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let Some(src) = reached.source.clone() else {
        return Ok(out);
    };
    for w in reached.wanted.iter_mut().filter(|w| w.seen.is_none()) {
        let api: Api<Secret> = Api::namespaced(client.clone(), &w.namespace);
        let Some(found) = api.get_opt(&w.name).await? else {
            continue;
        };
        if copy::source_of(&found).as_ref() == Some(&src) {
            copies.record(&found);
            w.seen = copies.get(&w.namespace, &w.name);
        } else {
            out.push(format!("{}/{}", w.namespace, w.name));
        }
    }
    Ok(out)
}

/// Makes every copy of one side say what `home` says; returns the writes.
pub async fn sync(
    client: &Client,
    copies: &Copies,
    reached: &Reached,
    verifier_side: bool,
    home: Option<&Secret>,
) -> Result<usize> {
    let (Some(home), Some(src)) = (home, reached.source.as_ref()) else {
        return Ok(0);
    };
    let digest = copy::digest(home);
    let mut writes = 0;
    for w in reached
        .wanted
        .iter()
        .filter(|w| w.verifier_side == verifier_side)
    {
        // The watch may lag behind a write this process made: `copies`
        // holds the latest answer.
        let seen = copies.get(&w.namespace, &w.name).or_else(|| w.seen.clone());
        if seen
            .as_ref()
            .is_some_and(|s| s.digest == digest && &s.source == src)
        {
            continue;
        }
        let secret = copy::render(home, &w.namespace, src);
        let api: Api<Secret> = Api::namespaced(client.clone(), &w.namespace);
        let written = match seen {
            Some(s) => {
                let patch = rewrite(&secret, &s);
                api.patch(&w.name, &merge_params(), &Patch::Merge(&patch))
                    .await?
            }
            None => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                api.create(&params, &secret).await?
            }
        };
        debug!(namespace = %w.namespace, secret = %w.name, "copy written");
        copies.record(&written);
        writes += 1;
    }
    Ok(writes)
}

/// The merge patch that makes the copy last seen as `seen` hold exactly
/// `secret`'s files (those it no longer has are removed), only over that
/// copy: its resourceVersion is the patch's precondition (409 otherwise,
/// planned again), so a Secret someone put there meanwhile is never
/// touched. A patch, not an update: keyrotor holds no `update` on Secrets.
fn rewrite(secret: &Secret, seen: &CopyObs) -> serde_json::Value {
    let mut data =
        serde_json::to_value(secret.data.clone().unwrap_or_default()).unwrap_or_else(|_| json!({}));
    for gone in &seen.files {
        if let Some(map) = data.as_object_mut()
            && !map.contains_key(gone)
        {
            map.insert(gone.clone(), serde_json::Value::Null);
        }
    }
    json!({
        "metadata": {
            "resourceVersion": seen.resource_version,
            "labels": secret.metadata.labels,
            "annotations": secret.metadata.annotations,
        },
        "data": data,
    })
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Deletes the copies no namespace needs any more; returns the writes.
pub async fn prune(client: &Client, copies: &Copies, reached: &Reached) -> Result<usize> {
    let mut writes = 0;
    for (ns, name) in &reached.targets.obsolete {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match api.delete(name, &DeleteParams::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            other => drop(other?),
        }
        info!(namespace = %ns, secret = %name, "copy no longer needed: no target asks for it and no pod references it");
        copies.forget(ns, name);
        writes += 1;
    }
    Ok(writes)
}

/// On deletion of the rotation: deletes every copy, or (Orphan) releases
/// it — keyrotor's labels removed, the files left for their consumers.
pub async fn cleanup(ctx: &Context, rot: &ApiKeyRotation, orphan: bool) -> Result<()> {
    let src = source(rot);
    for (ns, name) in ctx.reach.copies.of(&src) {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let done = if orphan {
            let patch = json!({"metadata": {"labels": {k::ROTATION_LABEL: null, k::ROLE_LABEL: null, k::SOURCE_NAMESPACE_LABEL: null}}});
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            api.patch(&name, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
        } else {
            api.delete(&name, &DeleteParams::default()).await.map(drop)
        };
        match done {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            other => other?,
        }
        ctx.reach.copies.forget(&ns, &name);
    }
    Ok(())
}
