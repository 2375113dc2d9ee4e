//! The plugin's reads and writes of ApiKeyRotations. Writes are JSON merge
//! patches with the field manager `kubectl-keyrotor`: they touch only the field
//! they mean to (an annotation, `spec.suspend`, `spec.revokedVersions`) and so
//! never take ownership of what keyrotor or a GitOps tool applies.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keyrotor_consumer::wire::Traffic;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{Error, table};
use crate::api::ApiKeyRotation;
use crate::rotation::VersionState;
use crate::wire::{self as k, PLUGIN_MANAGER};

/// Attempts at a revoke before giving up when the object keeps changing
/// under it. keyrotor's status writes bump the resourceVersion too, so a
/// conflict during a rotation is common and harmless: read again, retry.
const REVOKE_ATTEMPTS: usize = 5;

/// One named ApiKeyRotation.
pub struct Target {
    client: Client,
    api: Api<ApiKeyRotation>,
    namespace: String,
    name: String,
}

impl Target {
    pub fn new(client: Client, namespace: &str, name: String) -> Self {
        Target {
            client: client.clone(),
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name,
        }
    }

    /// What verifier endpoints in the namespace reported for this rotation
    /// (their pods' `traffic` annotation); empty when none did or pods
    /// cannot be listed.
    async fn traffic(&self) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let Ok(list) = pods.list_metadata(&ListParams::default()).await else {
            return String::new();
        };
        let key = k::traffic(&self.name);
        let mut sum = Traffic::default();
        let mut endpoints = 0;
        for p in &list.items {
            if let Some(text) = p.annotations().get(&key) {
                // Lenient: one pod's malformed entry must not hide the rest.
                if let Ok(read) = Traffic::parse_lenient(text) {
                    sum.add(&read.value);
                }
                endpoints += 1;
            }
        }
        table::traffic_details(endpoints, &sum)
    }

    /// `shop/orders`, as errors and confirmations name it.
    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A kube error as one sentence about this object.
    fn error(&self, e: kube::Error) -> Error {
        match &e {
            kube::Error::Api(s) if s.is_not_found() => Error::NotFound {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            },
            _ => api_error(e),
        }
    }

    async fn get(&self) -> Result<ApiKeyRotation, Error> {
        self.api.get(&self.name).await.map_err(|e| self.error(e))
    }

    async fn merge(&self, patch: serde_json::Value) -> Result<ApiKeyRotation, kube::Error> {
        let params = PatchParams {
            field_manager: Some(PLUGIN_MANAGER.to_string()),
            ..PatchParams::default()
        };
        self.api
            .patch(&self.name, &params, &Patch::Merge(&patch))
            .await
    }
}

/// Errors not about one named object (lists, connection, RBAC).
fn api_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.is_forbidden() => Error::Forbidden(s.message.clone()),
        kube::Error::Api(s) => Error::Api(format!("the API server refused: {}", s.message)),
        other => Error::Api(format!(
            "cannot reach the cluster: {}",
            super::chain(&other)
        )),
    }
}

/// `status NAME`: one row, then who a cycle in flight still waits for.
pub async fn status_one(target: &Target, now: Timestamp) -> Result<String, Error> {
    let rot = target.get().await?;
    let row = table::status_row(&rot, false, now);
    let mut out = table::render(&table::status_headers(false), &[row]);
    let details = rot
        .status
        .as_ref()
        .map(table::status_details)
        .unwrap_or_default();
    let traffic = target.traffic().await;
    for part in [details, traffic] {
        if !part.is_empty() {
            out.push('\n');
            out.push_str(&part);
        }
    }
    Ok(out)
}

/// `status` / `status -A`: every rotation in `namespace`, or in all of them.
pub async fn status_list(
    client: Client,
    namespace: Option<&str>,
    now: Timestamp,
) -> Result<String, Error> {
    let api: Api<ApiKeyRotation> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        // Listing a resource the cluster does not serve is a 404.
        Err(kube::Error::Api(s)) if s.is_not_found() => return Err(Error::NoCrd),
        Err(e) => return Err(api_error(e)),
    };
    if items.is_empty() {
        return Ok(match namespace {
            Some(ns) => format!("No ApiKeyRotations found in namespace {ns}.\n"),
            None => "No ApiKeyRotations found.\n".to_string(),
        });
    }
    items.sort_by_key(|a| (a.namespace(), a.name_any()));
    let all = namespace.is_none();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| table::status_row(r, all, now))
        .collect();
    Ok(table::render(&table::status_headers(all), &rows))
}

/// The imperative, GitOps-proof requests: an annotation keyrotor acts on once
/// per distinct value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Rotate,
    Rollback,
}

impl Request {
    fn annotation(self) -> &'static str {
        match self {
            Request::Rotate => k::ROTATE_REQUEST,
            Request::Rollback => k::ROLLBACK_REQUEST,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Request::Rotate => "rotation",
            Request::Rollback => "rollback",
        }
    }
}

/// `rotate` / `rollback`: sets the request annotation to a fresh token. The
/// time to the nanosecond is unique per request, and tells a reader of the
/// object when it was asked for.
pub async fn request(target: &Target, req: Request, now: Timestamp) -> Result<String, Error> {
    let token = now.to_string();
    let patch = json!({"metadata": {"annotations": {req.annotation(): token}}});
    let rot = target.merge(patch).await.map_err(|e| target.error(e))?;
    let mut line = format!(
        "apikeyrotation {} {} requested ({}={token})",
        target.id(),
        req.noun(),
        req.annotation()
    );
    if rot.spec.suspend {
        line.push_str("; the rotation is suspended, so it waits for `resume`");
    }
    line.push('\n');
    Ok(line)
}

/// `revoke NAME VERSION`: adds VERSION to `spec.revokedVersions`. The patch
/// carries the whole list and the resourceVersion it was read at, so a
/// concurrent edit of the list makes it fail (and retry from a fresh read)
/// instead of being overwritten.
pub async fn revoke(target: &Target, version: u64) -> Result<String, Error> {
    if version == 0 {
        return Err(Error::Refused(
            "there is no version 0: version numbers start at 1".to_string(),
        ));
    }
    for _ in 0..REVOKE_ATTEMPTS {
        let rot = target.get().await?;
        let versions = rot
            .status
            .as_ref()
            .map(|s| s.versions.as_slice())
            .unwrap_or_default();
        let Some(record) = versions.iter().find(|v| v.version == version) else {
            let known: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
            let known = if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            };
            return Err(Error::Refused(format!(
                "apikeyrotation {} has no version {version} (its versions: {known}); nothing revoked",
                target.id()
            )));
        };
        if rot.spec.revoked_versions.contains(&version) || record.state == VersionState::Revoked {
            return Ok(format!(
                "apikeyrotation {} version {version} is already revoked\n",
                target.id()
            ));
        }
        if matches!(
            record.state,
            VersionState::Retired | VersionState::Abandoned
        ) {
            return Err(Error::Refused(format!(
                "apikeyrotation {} version {version} is {:?}: no verifier accepts it and its key is deleted; nothing to revoke",
                target.id(),
                record.state
            )));
        }
        let mut list = rot.spec.revoked_versions.clone();
        list.push(version);
        list.sort_unstable();
        let patch = json!({
            "metadata": {"resourceVersion": rot.resource_version()},
            "spec": {"revokedVersions": list},
        });
        match target.merge(patch).await {
            Ok(_) => {
                let note = if record.state == VersionState::Current {
                    "; it was the current key, so presenters get a fresh one at once"
                } else {
                    ""
                };
                return Ok(format!(
                    "apikeyrotation {} version {version} revoked{note}\n",
                    target.id()
                ));
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(e) => return Err(target.error(e)),
        }
    }
    Err(Error::Conflict {
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        version,
    })
}

/// `history NAME`: every version status knows about.
pub async fn history(target: &Target) -> Result<String, Error> {
    let rot = target.get().await?;
    let versions = rot
        .status
        .as_ref()
        .map(|s| s.versions.as_slice())
        .unwrap_or_default();
    if versions.is_empty() {
        return Ok(format!(
            "apikeyrotation {} has no versions yet\n",
            target.id()
        ));
    }
    Ok(table::render(
        &table::history_headers(versions),
        &table::history_rows(versions),
    ))
}

/// `suspend` / `resume`: sets `spec.suspend`.
pub async fn suspend(target: &Target, suspend: bool) -> Result<String, Error> {
    target
        .merge(json!({"spec": {"suspend": suspend}}))
        .await
        .map_err(|e| target.error(e))?;
    Ok(if suspend {
        format!(
            "apikeyrotation {} suspended: no new cycle starts and every published key stays valid\n",
            target.id()
        )
    } else {
        format!("apikeyrotation {} resumed\n", target.id())
    })
}
