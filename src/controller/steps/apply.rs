//! Apply: carry out a plan's writes in order, stopping at the first failure
//! (any prefix of a plan is safe). Secrets keyrotor owns are written with
//! server-side apply as field manager `keyrotor`; objects it does not own
//! (workloads, pods) only get a merge patch of keyrotor's own annotations.
//!
//! Apply takes the snapshot's [`Material`] by value: the keys it creates and
//! the projections it writes join it on the way, for the writes after them.
//!
//! A hook that answers a step with "not yet" or a refusal stops the plan
//! there too, without failing it: [`Applied::held`] says which step.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;
use tracing::warn;

use super::consumers::{role, split_id};
use super::copies::{self, Reached};
use super::observe::key_of;
use crate::api::{ApiKeyRotation, HookEndpoint};
use crate::consumer::hook::Issued;
use crate::controller::error::Result;
use crate::controller::hook::{Answered, Held, HoldKind, HookClient, HookHold};
use crate::controller::memory::Memory;
use crate::controller::objects::material::Material;
use crate::controller::objects::render::{Layout, NewVersion};
use crate::controller::reach::Copies;
use crate::keys::{KeySpec, SecretKey};
use crate::rotation::{
    Action, Group, HookStep, Origin, Requests, Revision, Target, Version, WorkloadId, WorkloadKind,
};
use crate::wire::{
    self as k, ABANDONED, FIELD_MANAGER, HOOK_ACCEPTED, HOOK_ISSUED, HOOK_KEY_ID, RevisionReport,
    USERNAME, version_secret_name,
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
    pub hook: Option<&'a HookEndpoint>,
    /// `spec.issuerHook`, when there is one.
    pub issuer: Option<&'a HookEndpoint>,
    /// Told the answer to every Secret write, so the next observe can accept
    /// a cached list once it shows them.
    pub memory: &'a Memory,
    pub obj: ObjectRef<ApiKeyRotation>,
    /// The copies kept in other namespaces, as last written or seen.
    pub copies: &'a Copies,
    /// A hook answer that still stands: a pending one until its time, a
    /// refusal until the spec or `keyrotor.dev/retry-hook` changes.
    pub standing: Option<HookHold>,
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
    /// The step a hook held (pending or refused), where the plan stopped.
    pub held: Option<HookHold>,
    /// The plan's actions carried out (all of them unless a hook held one).
    pub ran: usize,
    /// A hook answered a step done.
    pub hook_done: bool,
}

impl Writer<'_> {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    /// Runs `actions` in order on the snapshot's material, with the copies
    /// in other namespaces (`reached`) following each projected write at
    /// once: the verifier side everywhere before the presenter side
    /// anywhere, so I1–I6 hold across namespaces. Copies left behind by an
    /// earlier failure catch up first, in the same order.
    pub async fn apply(
        &self,
        actions: &[Action],
        mut material: Material,
        reached: &Reached,
    ) -> Result<Applied> {
        let mut applied = Applied::default();
        applied.writes += self.follow(reached, &material, true).await?;
        applied.writes += self.follow(reached, &material, false).await?;
        for action in actions {
            applied.writes += self.apply_one(action, &mut material, &mut applied).await?;
            if applied.held.is_some() {
                // Held like a failure (every prefix is safe), but not one.
                return Ok(applied);
            }
            applied.ran += 1;
            if let Action::WriteProjection { target, .. } = action {
                let verifier_side = *target != Target::Presenter;
                applied.writes += self.follow(reached, &material, verifier_side).await?;
            }
        }
        applied.writes += copies::prune(&self.client, self.copies, reached).await?;
        Ok(applied)
    }

    /// The copies of one side made equal to the projected Secret they copy.
    async fn follow(
        &self,
        reached: &Reached,
        material: &Material,
        verifier_side: bool,
    ) -> Result<usize> {
        let home = if verifier_side {
            material.verifier_secret.as_ref()
        } else {
            material.presenter_secret.as_ref()
        };
        copies::sync(&self.client, self.copies, reached, verifier_side, home).await
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
                username,
            } => {
                let new = NewVersion {
                    origin: *origin,
                    requests,
                    created_at: self.now,
                    username: username.as_deref(),
                };
                let issued = match self.issued(*version, &new, material).await? {
                    Answered::Done(issued) => {
                        if issued.is_some() {
                            self.hook_done(applied);
                        }
                        issued
                    }
                    Answered::Held(hold) => return Ok(self.held(applied, hold)),
                };
                let stored = self
                    .create_version(*version, &new, material, issued)
                    .await?;
                keep(material, &mut applied.created, *version, stored);
            }
            Action::RestoreVersion {
                version,
                origin,
                created_at,
                username,
            } => {
                // The key a projection holds (see `repair::recoverable`).
                let Some(key) = material.keys.get(version).cloned() else {
                    return Ok(0);
                };
                let new = NewVersion {
                    origin: *origin,
                    requests: &Requests::default(),
                    created_at: *created_at,
                    username: username.as_deref(),
                };
                let secret = self.layout.version_secret(*version, &key, &new);
                warn!(version, "restoring a version Secret from a projection");
                let stored = self.create_or_keep(&secret, key).await?;
                keep(material, &mut applied.created, *version, stored);
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
                return self.call_hook(*step, *version, material, applied).await;
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

    /// The issuer hook's key for a new version, when the issuer mints it
    /// (`Done(None)`: keyrotor adopts or generates it).
    async fn issued(
        &self,
        version: Version,
        new: &NewVersion<'_>,
        material: &Material,
    ) -> Result<Answered<Option<Issued>>> {
        match (new.origin, &material.adopted_key, self.issuer) {
            (Origin::Adopted, Some(_), _) | (_, _, None) => Ok(Answered::Done(None)),
            (_, _, Some(issuer)) => Ok(
                match self.hooks().issue(issuer, version, new.username).await? {
                    Answered::Done(issued) => Answered::Done(Some(issued)),
                    Answered::Held(hold) => Answered::Held(hold),
                },
            ),
        }
    }

    /// A new version's Secret, with its key adopted, issued by the issuer
    /// hook (`issued`, for the version's user name), or generated.
    /// Returns what the Secret holds.
    async fn create_version(
        &self,
        version: Version,
        new: &NewVersion<'_>,
        material: &mut Material,
        issued: Option<Issued>,
    ) -> Result<Stored> {
        let origin = new.origin;
        let (key, key_id) = match (origin, &material.adopted_key, issued) {
            (Origin::Adopted, Some(k), _) => (k.clone(), None),
            (_, _, Some(issued)) => (issued.key, issued.key_id),
            _ => (SecretKey::generate(self.key_spec)?, None),
        };
        let mut secret = self.layout.version_secret(version, &key, new);
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
            *target, accepted, *current, *revision, *highest, material, previous, self.now,
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
        let (key, value) = RevisionReport(revision).annotation(self.rotation, role(group));
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {key: value}}}}});
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
        let (mut writes, mut refused) = (0, 0);
        for (id, attempt) in pods {
            let (ns, pod) = split_id(id, self.namespace);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let nudge = k::Nudge {
                revision,
                attempt: *attempt,
                at: self.now,
            };
            let (key, value) = nudge.annotation(self.rotation);
            let patch = json!({"metadata": {"annotations": {key: value}}});
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
    /// keeps the existing Secret's key and user name: one version number is
    /// one key, forever (I5). Returns what the Secret holds.
    async fn create_or_keep(&self, secret: &Secret, key: SecretKey) -> Result<Stored> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let secrets = self.secrets();
        match secrets.create(&params, secret).await {
            Ok(created) => {
                self.wrote(&created);
                Ok(Stored {
                    key: Some(key),
                    username: username_of(secret),
                })
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let name = secret.metadata.name.as_deref().unwrap_or_default();
                match secrets.get_opt(name).await? {
                    Some(existing) => {
                        self.wrote(&existing);
                        Ok(Stored {
                            key: key_of(&existing),
                            username: username_of(&existing),
                        })
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

    /// The rotation's hooks, as this reconcile calls them.
    fn hooks(&self) -> HookClient<'_> {
        HookClient {
            client: &self.client,
            namespace: self.namespace,
            rotation: self.rotation,
            uid: self.uid,
            verifier: self.hook,
            issuer: self.issuer,
            standing: self.standing.as_ref(),
        }
    }

    /// A hook held a step: the plan stops here, no write made. A pending
    /// answer is remembered until its time (a standing one keeps its own).
    fn held(&self, applied: &mut Applied, hold: HookHold) -> usize {
        if let HoldKind::Pending { retry_after } = hold.answer
            && self.standing.as_ref() != Some(&hold)
        {
            let until = self.now + jiff::SignedDuration::from_secs(retry_after.into());
            self.memory.hook_pending(&self.obj, &hold, until);
        }
        applied.held = Some(hold);
        0
    }

    /// A hook answered done: a pending answer no longer stands, and a
    /// recorded refusal is cleared (see `report`).
    fn hook_done(&self, applied: &mut Applied) {
        applied.hook_done = true;
        self.memory.hook_done(&self.obj);
    }

    /// One planned hook step. A successful `stage` is recorded on the
    /// version Secret (the confirmation the planner reads back, durable
    /// across restarts).
    async fn call_hook(
        &self,
        step: HookStep,
        version: Version,
        obs: &Material,
        applied: &mut Applied,
    ) -> Result<usize> {
        let key = obs.keys.get(&version);
        // Retiring a version whose key is gone still names it: by the digest
        // verifiers hold.
        let sha256 = key.map(SecretKey::digest).or_else(|| {
            let data = obs.verifier_secret.as_ref()?.data.as_ref()?;
            let digest = data.get(&k::digest_file(version))?;
            String::from_utf8(digest.0.clone()).ok()
        });
        let key_id = obs.key_ids.get(&version).map(String::as_str);
        let held = Held {
            key,
            sha256,
            key_id,
            username: obs.usernames.get(&version).map(String::as_str),
        };
        if let Answered::Held(hold) = self.hooks().call(step, version, held).await? {
            return Ok(self.held(applied, hold));
        }
        self.hook_done(applied);
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
}

/// What a version Secret holds once created, or found already there.
struct Stored {
    /// `None`: it exists, emptied.
    key: Option<SecretKey>,
    username: Option<String>,
}

/// The user name a version Secret records.
fn username_of(secret: &Secret) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(USERNAME).cloned()
}

/// The key and user name version `v`'s Secret ended up holding, kept for
/// rendering and reported (the key's fingerprint) to status.
fn keep(
    material: &mut Material,
    created: &mut BTreeMap<Version, String>,
    v: Version,
    stored: Stored,
) {
    if let Some(name) = stored.username {
        material.usernames.insert(v, name);
    }
    if let Some(key) = stored.key {
        created.insert(v, key.fingerprint());
        material.keys.insert(v, key);
    }
}
