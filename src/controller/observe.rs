//! Observe: read everything one rotation's plan depends on — its version and
//! projected Secrets (from the API server's watch cache when it shows every
//! write keyrotor made, else consistently: `known_secrets`), its consumer
//! pods from the slim cache, its workloads — and turn it into the planner's
//! `Observed`, plus the key material the writes will need.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use keyrotor_consumer::traffic::Traffic;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::context::Context;
use super::error::Result;
use super::index::SlimPod;
use super::known_secrets::Read;
use super::render;
use super::rollout;
use crate::api::{ApiKeyRotation, ConsumerGroup, validate::Validated};
use crate::keys::SecretKey;
use crate::rotation::{
    AdoptionObs, Consumer, Group, GroupObs, Nudge, Observed, Requests, Version, WorkloadId,
    WorkloadKind, WorkloadObs,
};
use crate::wire::{self as k, KEY};

/// Role name of a group in report annotations.
pub fn role(g: Group) -> &'static str {
    match g {
        Group::Verifiers => k::ROLE_VERIFIER,
        Group::Presenters => k::ROLE_PRESENTER,
    }
}

/// What one reconcile read from the cluster: the planner's [`Observed`] plus
/// what only the I/O steps may touch (key material, the raw projected Secrets).
pub struct Snapshot {
    pub observed: Observed,
    pub keys: BTreeMap<Version, SecretKey>,
    pub verifier_secret: Option<Secret>,
    pub presenter_secret: Option<Secret>,
    pub adopted_key: Option<SecretKey>,
    /// Projected Secrets that exist but belong to someone else.
    pub conflicts: Vec<String>,
    /// What each verifier pod's `keyrotor verifier` checked (its `traffic`
    /// annotation), for the missed-rotation warning.
    pub gateway_traffic: Vec<(String, Traffic)>,
    /// The `keyId` an issuer hook gave each version it minted, sent back
    /// with `retire`.
    pub key_ids: BTreeMap<Version, String>,
    /// How the rotation's Secrets were read.
    pub secrets_read: Read,
}

pub async fn observe(rot: &ApiKeyRotation, v: &Validated, ctx: &Context) -> Result<Snapshot> {
    let ns = rot.namespace().unwrap_or_default();
    let name = rot.name_any();
    let uid = rot.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = |s: &Secret| s.owner_references().iter().any(|o| o.uid == uid);

    // One LIST by the rotation label returns the version Secrets and, as they
    // carry the label too, both projected Secrets. Served from the API
    // server's watch cache as it stands when it shows every write keyrotor
    // made (`known_secrets`), else consistent. A projected Secret missing
    // from it is read by name, which tells "absent" from "someone else's
    // Secret of that name".
    let selector = format!("{}={name}", k::ROTATION_LABEL);
    let mut cached = None;
    if ctx.secrets.knows(&ns, &name) {
        let list = secrets
            .list(&ListParams::default().labels(&selector).match_any())
            .await?
            .items;
        cached = ctx.secrets.current(&ns, &name, &list).then_some(list);
    }
    let (listed, secrets_read) = match cached {
        Some(list) => (list, Read::Cached),
        None => {
            let list = secrets
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            ctx.secrets.listed(&ns, &name, &list);
            (list, Read::Consistent)
        }
    };
    let mut observed = Observed::default();
    let mut keys = BTreeMap::new();
    let mut key_ids = BTreeMap::new();
    let (mut verifier_secret, mut presenter_secret) = (None, None);
    for s in listed.into_iter().filter(|s| owned(s)) {
        let secret_name = s.name_any();
        if secret_name == v.verifier_secret {
            verifier_secret = Some(s);
        } else if !v.policy.combined && secret_name == v.presenter_secret {
            presenter_secret = Some(s);
        } else if s.labels().get(k::ROLE_LABEL).map(String::as_str) == Some(k::ROLE_VERSION)
            && let Some((version, obs, key)) = render::version_obs(&s)
        {
            if let Some(key) = key {
                keys.insert(version, key);
            }
            if let Some(id) = s.annotations().get(k::HOOK_KEY_ID) {
                key_ids.insert(version, id.clone());
            }
            observed.versions.insert(version, obs);
        }
    }

    let mut conflicts = Vec::new();
    let mut by_name = async |secret_name: &str, listed: Option<Secret>| -> Result<Option<Secret>> {
        if listed.is_some() {
            return Ok(listed);
        }
        Ok(match secrets.get_opt(secret_name).await? {
            Some(s) if !owned(&s) => {
                conflicts.push(secret_name.to_string());
                None
            }
            other => other,
        })
    };
    let verifier_secret = by_name(&v.verifier_secret, verifier_secret).await?;
    let presenter_secret = if v.policy.combined {
        verifier_secret.clone()
    } else {
        by_name(&v.presenter_secret, presenter_secret).await?
    };
    observed.verifier = verifier_secret.as_ref().and_then(render::published);
    observed.presenter = presenter_secret.as_ref().and_then(render::published);

    // One consistent snapshot of this rotation's pods (see `freshness`).
    let selectors: Vec<&crate::api::LabelSelector> = [
        &rot.spec.consumers.verifiers,
        &rot.spec.consumers.presenters,
    ]
    .iter()
    .filter_map(|g| g.selector.as_ref())
    .collect();
    let pods = ctx.pods.consumers(
        &ns,
        &[v.verifier_secret.as_str(), v.presenter_secret.as_str()],
        &selectors,
    );
    consumers(rot, v, ctx, &pods, &mut observed).await?;
    let gateway_traffic = gateway_traffic(&name, v, &rot.spec.consumers.verifiers, &pods);
    let spec = &rot.spec;
    observed.rotate = Requests {
        spec: spec.rotation_request.clone(),
        annotation: rot.annotations().get(k::ROTATE_REQUEST).cloned(),
    };
    observed.rollback = Requests {
        spec: spec.rollback_request.clone(),
        annotation: rot.annotations().get(k::ROLLBACK_REQUEST).cloned(),
    };
    observed.record = rot.status.clone().unwrap_or_default().record();

    let mut adopted_key = None;
    let uninitialized = observed.versions.is_empty()
        && observed.presenter.is_none()
        && observed.record.current.is_none();
    if let (Some(adopt), true) = (&spec.adopt, uninitialized) {
        let source = secrets.get_opt(&adopt.secret_name).await?;
        adopted_key = source
            .and_then(|s| s.data)
            .and_then(|d| d.get(&adopt.key).cloned())
            .and_then(|b| SecretKey::adopt(b.0).ok());
        observed.adoption = adopted_key.as_ref().map(|k| AdoptionObs {
            fingerprint: k.fingerprint(),
        });
    }

    let mut obs = Snapshot {
        observed,
        keys,
        verifier_secret,
        presenter_secret,
        adopted_key,
        conflicts,
        gateway_traffic,
        key_ids,
        secrets_read,
    };
    // The list may predate a version Secret a projection publishes: look
    // again by name before calling it lost.
    for version in super::repair::missing_versions(&obs) {
        let secret = secrets
            .get_opt(&k::version_secret_name(&name, version))
            .await?;
        if let Some((n, vo, key)) = secret.as_ref().and_then(render::version_obs) {
            if let Some(key) = key {
                obs.keys.insert(n, key);
            }
            obs.observed.versions.insert(n, vo);
        }
    }
    super::repair::find_recoverable(&mut obs, v.verifier_format);
    Ok(obs)
}

/// Fills the consumer groups and traffic of `observed` from `pods` (pods of
/// the rotation's namespace, from the cache or freshly listed; pods of other
/// groups are ignored).
pub async fn consumers(
    rot: &ApiKeyRotation,
    v: &Validated,
    ctx: &Context,
    pods: &[Arc<SlimPod>],
    observed: &mut Observed,
) -> Result<()> {
    let ns = rot.namespace().unwrap_or_default();
    let name = rot.name_any();
    let pods: Vec<Arc<SlimPod>> = pods.iter().filter(|p| p.running).cloned().collect();
    let spec = &rot.spec;
    observed.verifiers = group_obs(
        &name,
        Group::Verifiers,
        &spec.consumers.verifiers,
        &v.verifier_secret,
        &pods,
        &ctx.client,
        &ns,
    )
    .await?;
    observed.presenters = group_obs(
        &name,
        Group::Presenters,
        &spec.consumers.presenters,
        &v.presenter_secret,
        &pods,
        &ctx.client,
        &ns,
    )
    .await?;
    observed.traffic = traffic(&name, &v.verifier_secret, &spec.consumers.verifiers, &pods);
    // The pods may not show the nudges this process sent yet.
    ctx.nudges.recall(&ObjectRef::from_obj(rot), observed);
    Ok(())
}

/// A group is every running pod that references its Secret, plus pods its
/// selector adds: no consumer can be forgotten.
fn members<'a>(
    group: &'a ConsumerGroup,
    secret: &'a str,
    pods: &'a [Arc<SlimPod>],
) -> impl Iterator<Item = &'a Arc<SlimPod>> {
    pods.iter()
        .filter(move |p| p.consumes(secret, group.selector.as_ref()))
}

#[allow(clippy::too_many_arguments)]
async fn group_obs(
    rotation: &str,
    g: Group,
    group: &ConsumerGroup,
    secret: &str,
    pods: &[Arc<SlimPod>],
    client: &kube::Client,
    ns: &str,
) -> Result<GroupObs> {
    let report_key = k::report(rotation, role(g));
    let nudge_key = k::nudge(rotation);
    let consumers = members(group, secret, pods)
        .map(|p| {
            let ann = &p.annotations;
            Consumer {
                pod: p.name.to_string(),
                reported: ann.get(&report_key).and_then(|v| v.parse().ok()),
                nudge: ann.get(&nudge_key).and_then(parse_nudge),
            }
        })
        .collect();
    let mut workloads = Vec::new();
    for w in &group.workloads {
        let id = WorkloadId {
            kind: w.kind,
            name: w.name.clone(),
        };
        if let Some(obs) = workload(client, ns, &id, &report_key).await? {
            workloads.push(obs);
        }
    }
    Ok(GroupObs {
        consumers,
        workloads,
    })
}

fn parse_nudge(v: &str) -> Option<Nudge> {
    let mut parts = v.split('/');
    let revision = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    let at = Timestamp::from_second(parts.next()?.parse().ok()?).ok()?;
    Some(Nudge {
        revision,
        attempt,
        at,
    })
}

/// Latest time any verifier saw each version presented.
fn traffic(
    rotation: &str,
    secret: &str,
    group: &ConsumerGroup,
    pods: &[Arc<SlimPod>],
) -> BTreeMap<Version, Timestamp> {
    let key = k::last_seen(rotation);
    let mut out: BTreeMap<Version, Timestamp> = BTreeMap::new();
    for p in members(group, secret, pods) {
        let Some(text) = p.annotations.get(&key) else {
            continue;
        };
        for entry in text.split(',') {
            let Some((v, t)) = entry.split_once('=') else {
                continue;
            };
            let (Ok(v), Ok(t)) = (v.trim().parse::<Version>(), t.trim().parse::<Timestamp>())
            else {
                continue;
            };
            let e = out.entry(v).or_insert(t);
            *e = (*e).max(t);
        }
    }
    out
}

/// Each running verifier pod's `traffic` annotation, where it has one.
fn gateway_traffic(
    rotation: &str,
    v: &Validated,
    group: &ConsumerGroup,
    pods: &[Arc<SlimPod>],
) -> Vec<(String, Traffic)> {
    let key = k::traffic(rotation);
    let running: Vec<Arc<SlimPod>> = pods.iter().filter(|p| p.running).cloned().collect();
    members(group, &v.verifier_secret, &running)
        .filter_map(|p| Some((p.name.to_string(), Traffic::parse(p.annotations.get(&key)?))))
        .collect()
}

/// A referenced workload: the revision stamped in its pod template and
/// whether its rollout has finished.
async fn workload(
    client: &kube::Client,
    ns: &str,
    id: &WorkloadId,
    key: &str,
) -> Result<Option<WorkloadObs>> {
    let stamp = |t: Option<&PodTemplateSpec>| {
        t.and_then(|t| {
            t.metadata
                .as_ref()?
                .annotations
                .as_ref()?
                .get(key)?
                .parse()
                .ok()
        })
    };
    let obs = match id.kind {
        WorkloadKind::Deployment => get::<Deployment>(client, ns, &id.name).await?.map(|d| {
            (
                stamp(d.spec.as_ref().map(|s| &s.template)),
                rollout::deployment_done(&d),
            )
        }),
        WorkloadKind::StatefulSet => get::<StatefulSet>(client, ns, &id.name).await?.map(|d| {
            (
                stamp(d.spec.as_ref().map(|s| &s.template)),
                rollout::statefulset_done(&d),
            )
        }),
        WorkloadKind::DaemonSet => get::<DaemonSet>(client, ns, &id.name).await?.map(|d| {
            (
                stamp(d.spec.as_ref().map(|s| &s.template)),
                rollout::daemonset_done(&d),
            )
        }),
    };
    Ok(obs.map(|(stamped, rolled_out)| WorkloadObs {
        id: id.clone(),
        stamped,
        rolled_out,
    }))
}

async fn get<K>(client: &kube::Client, ns: &str, name: &str) -> Result<Option<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?)
}

/// The key a version Secret or an adoption source holds.
pub fn key_of(secret: &Secret) -> Option<SecretKey> {
    secret
        .data
        .as_ref()?
        .get(KEY)
        .and_then(|b| SecretKey::adopt(b.0.clone()).ok())
}
