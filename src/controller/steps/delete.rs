//! Deletion: the rotation's deletion policy at work before its finalizer is
//! released (Delete: every Secret keyrotor made goes, copies in other
//! namespaces too; Orphan: the projected Secrets and copies stay, released
//! from the rotation), then its memory is forgotten.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::copies;
use crate::api::{ApiKeyRotation, DeletionPolicy};
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::wire::{self as k, FIELD_MANAGER};

pub async fn delete(rot: &ApiKeyRotation, ctx: &Context) -> Result<Requeue> {
    let ns = rot.namespace().unwrap_or_default();
    let orphan = rot.spec.deletion_policy == DeletionPolicy::Orphan;
    if !ctx.reach.copies.is_ready() {
        return Err(Error::CopiesNotListed);
    }
    copies::cleanup(ctx, rot, orphan).await?;
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
    ctx.forget(&ObjectRef::from_obj(rot));
    info!(policy = ?rot.spec.deletion_policy, "rotation deleted; Secrets cleaned up");
    Ok(Requeue::await_change())
}

/// Whether namespace `ns` is being deleted (false when that cannot be read).
async fn namespace_terminating(ctx: &Context, ns: &str) -> bool {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    matches!(api.get_opt(ns).await, Ok(Some(n)) if n.metadata.deletion_timestamp.is_some())
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Deletion policy at work when the rotation is deleted.
async fn cleanup(
    client: Client,
    ns: &str,
    rotation: &str,
    uid: &str,
    orphan_projections: bool,
    projected: &[&str],
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let selector = format!("{}={rotation}", k::ROTATION_LABEL);
    let list = secrets
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    for s in list.items {
        let owned = s
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid);
        let name = s.metadata.name.clone().unwrap_or_default();
        if !owned {
            continue; // never touch a Secret keyrotor does not own
        }
        let is_projection = projected.contains(&name.as_str());
        if orphan_projections && is_projection {
            let others: Vec<_> = s
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|o| o.uid != uid)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"ownerReferences": others, "labels": {k::ROTATION_LABEL: null, k::ROLE_LABEL: null}}});
            secrets
                .patch(&name, &merge_params(), &Patch::Merge(&patch))
                .await?;
        } else {
            match secrets.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                other => {
                    other?;
                }
            }
        }
    }
    Ok(())
}
