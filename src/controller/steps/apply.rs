//! Apply: carry out a plan's writes in order, stopping at the first failure
//! (any prefix of a plan is safe). Secrets keyrotor owns are written with
//! server-side apply as field manager `keyrotor`; objects it does not own
//! (workloads, pods) only get a merge patch of keyrotor's own annotations.
//!
//! Apply takes the snapshot's [`Material`] by value: the keys it creates and
//! the projections it writes join it on the way, for the writes after them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;
use tracing::warn;

use super::consumers::role;
use super::observe::key_of;
use crate::api::{ApiKeyRotation, VerifierHook};
use crate::controller::error::{Error, Result};
use crate::controller::hook::{self, Endpoint, HookError};
use crate::controller::memory::Memory;
use crate::controller::objects::material::Material;
use crate::controller::objects::render::Layout;
use crate::hook::protocol::{API_VERSION, HookAnswer, HookRequest, idempotency_key, key_id_ok};
use crate::keys::{KeySpec, SecretKey};
use crate::rotation::{
    Action, Group, HookStep, Origin, Requests, Revision, Target, Version, WorkloadId, WorkloadKind,
};
use crate::wire::{
    self as k, ABANDONED, FIELD_MANAGER, HOOK_ACCEPTED, HOOK_ISSUED, HOOK_KEY_ID,
    version_secret_name,
};

/// Everything one reconcile's writes need.
pub struct Writer<'a> {
    pub client: Client,
    pub namespace: &'a str,
    pub rotation: &'a str,
    pub layout: Layout<'a>,
    pub key_spec: &'a KeySpec,
    pub now: Timestamp,
    /// `metadata.uid` of the rotation (sent to hooks).
    pub uid: &'a str,
    /// `spec.verifierHook`, when there is one.
    pub hook: Option<&'a VerifierHook>,
    /// `spec.issuerHook`, when there is one.
    pub issuer: Option<&'a VerifierHook>,
    /// Told the answer to every Secret write, so the next observe can accept
    /// a cached list once it shows them.
    pub memory: &'a Memory,
    pub obj: ObjectRef<ApiKeyRotation>,
}

/// Which hook a call goes to: names it in errors and picks its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookRole {
    Verifier,
    Issuer,
}

impl HookRole {
    pub fn field(self) -> &'static str {
        match self {
            HookRole::Verifier => "spec.verifierHook",
            HookRole::Issuer => "spec.issuerHook",
        }
    }
    pub fn noun(self) -> &'static str {
        match self {
            HookRole::Verifier => "verifier hook",
            HookRole::Issuer => "issuer hook",
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// What a plan's writes did.
#[derive(Debug, Default)]
pub struct Applied {
    /// API writes made (a nudge of three pods is three).
    pub writes: usize,
    /// Fingerprints of the version Secrets created or restored: the planner
    /// could not know them, status reports them.
    pub created: BTreeMap<Version, String>,
    /// Nudges the API refused (403: RBAC lacks `pods patch`).
    pub nudges_refused: usize,
}

impl Writer<'_> {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    /// Runs `actions` in order on the snapshot's material.
    pub async fn apply(&self, actions: &[Action], mut material: Material) -> Result<Applied> {
        let mut applied = Applied::default();
        for action in actions {
            applied.writes += self.apply_one(action, &mut material, &mut applied).await?;
        }
        Ok(applied)
    }

    /// One action; returns the number of API writes it made.
    async fn apply_one(
        &self,
        action: &Action,
        material: &mut Material,
        applied: &mut Applied,
    ) -> Result<usize> {
        match action {
            Action::CreateVersion {
                version,
                origin,
                requests,
            } => {
                let held = self
                    .create_version(*version, *origin, requests, material)
                    .await?;
                keep(material, &mut applied.created, *version, held);
            }
            Action::RestoreVersion {
                version,
                origin,
                created_at,
            } => {
                // The key a projection holds (see `repair::recoverable`).
                let Some(key) = material.keys.get(version).cloned() else {
                    return Ok(0);
                };
                let no_requests = Requests::default();
                let secret =
                    self.layout
                        .version_secret(*version, &key, *origin, &no_requests, *created_at);
                warn!(version, "restoring a version Secret from a projection");
                let held = self.create_or_keep(&secret, key).await?;
                keep(material, &mut applied.created, *version, held);
            }
            Action::WriteProjection { target, .. } => {
                let written = self.write_projection(action, material).await?;
                match target {
                    Target::Presenter => material.presenter_secret = Some(written),
                    Target::Verifier => material.verifier_secret = Some(written),
                    Target::Combined => {
                        material.verifier_secret = Some(written.clone());
                        material.presenter_secret = Some(written);
                    }
                }
            }
            Action::MarkAbandoned { version, requests } => {
                self.mark_abandoned(*version, requests).await?;
            }
            Action::CallHook { step, version } => {
                return self.call_hook(*step, *version, material).await;
            }
            Action::DeleteVersion { version } => {
                self.delete_version(*version).await?;
                material.keys.remove(version);
            }
            Action::StampWorkload {
                group,
                workload,
                revision,
            } => self.stamp_workload(*group, workload, *revision).await?,
            Action::Nudge { revision, pods, .. } => {
                let (writes, refused) = self.nudge(*revision, pods).await?;
                applied.nudges_refused += refused;
                return Ok(writes);
            }
        }
        Ok(1)
    }

    /// A new version's Secret, with its key adopted, issued by the issuer
    /// hook, or generated. Returns the key the Secret holds.
    async fn create_version(
        &self,
        version: Version,
        origin: Origin,
        requests: &Requests,
        material: &mut Material,
    ) -> Result<Option<SecretKey>> {
        let (key, key_id) = match (origin, &material.adopted_key, self.issuer) {
            (Origin::Adopted, Some(k), _) => (k.clone(), None),
            (_, _, Some(issuer)) => self.issue(issuer, version).await?,
            _ => (SecretKey::generate(self.key_spec)?, None),
        };
        let mut secret = self
            .layout
            .version_secret(version, &key, origin, requests, self.now);
        if self.issuer.is_some() && origin != Origin::Adopted {
            let ann = secret.metadata.annotations.get_or_insert_default();
            ann.insert(HOOK_ISSUED.into(), self.now.to_string());
            if let Some(id) = key_id {
                material.key_ids.insert(version, id.clone());
                ann.insert(HOOK_KEY_ID.into(), id);
            }
        }
        self.create_or_keep(&secret, key).await
    }

    /// A projected Secret, rendered from the material and written with
    /// server-side apply; returns it as the API server stored it.
    async fn write_projection(&self, action: &Action, material: &Material) -> Result<Secret> {
        let Action::WriteProjection {
            target,
            accepted,
            current,
            revision,
            highest,
        } = action
        else {
            unreachable!("write_projection is called for WriteProjection only");
        };
        let previous = match target {
            Target::Presenter => material.presenter_secret.as_ref(),
            _ => material.verifier_secret.as_ref(),
        };
        let mut secret = self.layout.projected_secret(
            *target,
            accepted,
            *current,
            *revision,
            *highest,
            &material.keys,
            previous,
            self.now,
        )?;
        // Optimistic concurrency: the write holds only if the Secret is
        // still what this plan was computed from (409 otherwise, and the
        // next reconcile plans again on fresh state).
        secret.metadata.resource_version =
            previous.and_then(|p| p.metadata.resource_version.clone());
        let name = secret.metadata.name.clone().unwrap_or_default();
        let written = self
            .secrets()
            .patch(&name, &apply_params(), &Patch::Apply(&secret))
            .await?;
        self.wrote(&written);
        Ok(written)
    }

    async fn mark_abandoned(&self, version: Version, requests: &Requests) -> Result<()> {
        let value = serde_json::to_string(requests).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {ABANDONED: value}}});
        let name = version_secret_name(self.rotation, version);
        match self
            .secrets()
            .patch(&name, &merge_params(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => self.gone(&name),
            other => self.wrote(&other?),
        }
        Ok(())
    }

    async fn delete_version(&self, version: Version) -> Result<()> {
        let name = version_secret_name(self.rotation, version);
        match self.secrets().delete(&name, &DeleteParams::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            other => drop(other?),
        }
        self.gone(&name);
        Ok(())
    }

    /// Rollout mode: the revision in the workload's pod template, which
    /// rolls its pods.
    async fn stamp_workload(
        &self,
        group: Group,
        workload: &WorkloadId,
        revision: Revision,
    ) -> Result<()> {
        let key = k::report(self.rotation, role(group));
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {key: revision.to_string()}}}}});
        let (c, ns, p, name) = (
            self.client.clone(),
            self.namespace,
            Patch::Merge(&patch),
            &workload.name,
        );
        let params = merge_params();
        match workload.kind {
            WorkloadKind::Deployment => drop(
                Api::<Deployment>::namespaced(c, ns)
                    .patch(name, &params, &p)
                    .await?,
            ),
            WorkloadKind::StatefulSet => drop(
                Api::<StatefulSet>::namespaced(c, ns)
                    .patch(name, &params, &p)
                    .await?,
            ),
            WorkloadKind::DaemonSet => drop(
                Api::<DaemonSet>::namespaced(c, ns)
                    .patch(name, &params, &p)
                    .await?,
            ),
        }
        Ok(())
    }

    /// Nudges pods to resync their volumes; returns the writes made and the
    /// nudges the API refused.
    async fn nudge(&self, revision: Revision, pods: &[(String, u32)]) -> Result<(usize, usize)> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.namespace);
        let key = k::nudge(self.rotation);
        let (mut writes, mut refused) = (0, 0);
        for (pod, attempt) in pods {
            let value = format!("{revision}/{attempt}/{}", self.now.as_second());
            let patch = json!({"metadata": {"annotations": {&key: value}}});
            // A nudge is a hint: a pod that went away meanwhile is fine.
            match api.patch(pod, &merge_params(), &Patch::Merge(&patch)).await {
                Ok(_) => writes += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                // RBAC without `pods patch`: the nudge is only a hint, so
                // the step goes on at kubelet's pace; the caller says so.
                Err(kube::Error::Api(e)) if e.code == 403 => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((writes, refused))
    }

    /// Creates a version Secret holding `key`, or, when it already exists (an
    /// earlier attempt whose answer was lost, or a restore racing another),
    /// keeps the existing Secret's key: one version number is one key, forever
    /// (I5). Returns the key the Secret holds (`None`: it exists, emptied).
    async fn create_or_keep(&self, secret: &Secret, key: SecretKey) -> Result<Option<SecretKey>> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let secrets = self.secrets();
        match secrets.create(&params, secret).await {
            Ok(created) => {
                self.wrote(&created);
                Ok(Some(key))
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let name = secret.metadata.name.as_deref().unwrap_or_default();
                match secrets.get_opt(name).await? {
                    Some(existing) => {
                        self.wrote(&existing);
                        Ok(key_of(&existing))
                    }
                    // A conflict and yet nothing there (deleted meanwhile):
                    // still a conflict, so re-read and plan again soon.
                    None => Err(kube::Error::Api(e).into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn wrote(&self, secret: &Secret) {
        self.memory.secret_written(&self.obj, secret);
    }

    fn gone(&self, name: &str) {
        self.memory.secret_deleted(&self.obj, name);
    }

    /// One planned hook step. A successful `stage` is recorded on the
    /// version Secret (the confirmation the planner reads back, durable
    /// across restarts); `retire` goes to the verifier hook, then to the
    /// issuer, which revokes the key it minted.
    async fn call_hook(&self, step: HookStep, version: Version, obs: &Material) -> Result<usize> {
        let key = obs.keys.get(&version);
        // Retiring a version whose key is gone still names it: by the digest
        // verifiers hold.
        let sha256 = key.map(SecretKey::digest).or_else(|| {
            let data = obs.verifier_secret.as_ref()?.data.as_ref()?;
            let digest = data.get(&k::digest_file(version))?;
            String::from_utf8(digest.0.clone()).ok()
        });
        let hooks = match step {
            HookStep::Stage => vec![(HookRole::Verifier, self.hook)],
            HookStep::Retire => vec![
                (HookRole::Verifier, self.hook),
                (HookRole::Issuer, self.issuer),
            ],
        };
        for (role, spec) in hooks {
            // A hook removed from the spec since the plan is not called.
            let Some(spec) = spec else { continue };
            let failed = |source| Error::Hook {
                role: role.noun(),
                step: step.as_str(),
                version,
                source,
            };
            if step == HookStep::Stage && key.is_none() {
                return Err(failed(HookError::KeyMissing));
            }
            let Some(sha256) = sha256.clone() else {
                warn!(
                    version,
                    hook = role.noun(),
                    "cannot name the version to the hook: its key and digest are gone"
                );
                continue;
            };
            let mut request = self.request(step.as_str(), version);
            request.sha256 = sha256;
            request.key = match step {
                HookStep::Stage => key.map(|k| k.expose().to_string()),
                HookStep::Retire => None,
            };
            if role == HookRole::Issuer {
                request.key_id = obs.key_ids.get(&version).cloned();
            }
            let result = self.send(role, spec, &request).await;
            drop(request.key.map(zeroize::Zeroizing::new)); // wipe the key's copy
            result.map_err(failed)?;
        }
        if step == HookStep::Stage && self.hook.is_some() {
            let patch = json!({"metadata": {"annotations": {HOOK_ACCEPTED: self.now.to_string()}}});
            let name = version_secret_name(self.rotation, version);
            let written = self
                .secrets()
                .patch(&name, &merge_params(), &Patch::Merge(&patch))
                .await?;
            self.wrote(&written);
            return Ok(1);
        }
        Ok(0)
    }

    /// Asks the issuer for version `version`'s key. A repeated idempotency
    /// key gets the same key back (the protocol's rule for issuers), so a
    /// retry after a lost answer or a crash never mints a second key for one
    /// version; the version Secret, created once, keeps what came first.
    async fn issue(
        &self,
        spec: &VerifierHook,
        version: Version,
    ) -> Result<(SecretKey, Option<String>)> {
        let failed = |source| Error::Hook {
            role: HookRole::Issuer.noun(),
            step: "issue",
            version,
            source,
        };
        let request = self.request("issue", version);
        let mut answer = self
            .send(HookRole::Issuer, spec, &request)
            .await
            .map_err(failed)?;
        let key = answer.key.take().ok_or(failed(HookError::NoKey))?;
        let key = SecretKey::adopt(key.into_bytes()).map_err(|e| {
            failed(match e {
                crate::keys::KeyError::Adopted(why) => HookError::BadKey(why),
                _ => HookError::BadKey("unusable"),
            })
        })?;
        let key_id = answer.key_id.take();
        if key_id.as_deref().is_some_and(|id| !key_id_ok(id)) {
            return Err(failed(HookError::BadKeyId));
        }
        Ok((key, key_id))
    }

    fn request(&self, step: &str, version: Version) -> HookRequest {
        HookRequest {
            api_version: API_VERSION.into(),
            step: step.into(),
            idempotency_key: idempotency_key(self.namespace, self.rotation, version, step),
            namespace: self.namespace.into(),
            rotation: self.rotation.into(),
            uid: self.uid.into(),
            version,
            sha256: String::new(),
            key: None,
            key_id: None,
        }
    }

    async fn send(
        &self,
        role: HookRole,
        spec: &VerifierHook,
        request: &HookRequest,
    ) -> std::result::Result<HookAnswer, HookError> {
        let token = self.hook_token(role, spec).await?;
        let endpoint = Endpoint {
            url: spec.url.clone(),
            ca_bundle: spec.ca_bundle.clone(),
            timeout: std::time::Duration::from_secs(spec.timeout_seconds.into()),
        };
        hook::call(&endpoint, &token, request).await
    }

    /// The bearer token: from the Secret, read at each call so a rotated
    /// token is used at once, or minted for the operator's ServiceAccount.
    async fn hook_token(
        &self,
        role: HookRole,
        spec: &VerifierHook,
    ) -> std::result::Result<zeroize::Zeroizing<String>, HookError> {
        let Some(r) = &spec.token_secret_ref else {
            let Some(sa) = &spec.service_account_token else {
                return Err(HookError::Identity(format!(
                    "{} names no token; set tokenSecretRef or serviceAccountToken",
                    role.field()
                )));
            };
            return crate::controller::hook_auth::token(&self.client, sa).await;
        };
        let missing = |why: String| HookError::Token(format!("{}/{}", self.namespace, r.name), why);
        let secret = self
            .secrets()
            .get_opt(&r.name)
            .await
            .map_err(|e| missing(format!("cannot be read: {e}")))?
            .ok_or_else(|| {
                missing(format!(
                    "does not exist; create it or fix {}.tokenSecretRef",
                    role.field()
                ))
            })?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .ok_or_else(|| missing(format!("has no data key {:?}", r.key)))?;
        let token = String::from_utf8(bytes.0.clone())
            .map(|t| zeroize::Zeroizing::new(t.trim().to_string()))
            .map_err(|_| missing(format!("data key {:?} is not text", r.key)))?;
        if token.is_empty() {
            return Err(missing(format!("data key {:?} is empty", r.key)));
        }
        Ok(token)
    }
}

/// The key version `v`'s Secret ended up holding, kept for rendering and
/// reported (its fingerprint) to status.
fn keep(
    material: &mut Material,
    created: &mut BTreeMap<Version, String>,
    v: Version,
    key: Option<SecretKey>,
) {
    if let Some(key) = key {
        created.insert(v, key.fingerprint());
        material.keys.insert(v, key);
    }
}
