//! The consumers of one rotation, as its plan needs them: each group's pods
//! in every namespace holding its Secret (from the slim pod caches, or
//! freshly listed by `fresh`) with the revision
//! they report and the last nudge, the workloads Rollout mode restarts, and
//! what verifiers report of the traffic they saw.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use keyrotor_consumer::wire::{LastSeen, RevisionReport, Traffic};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::copies::Reached;
use crate::api::{ApiKeyRotation, ConsumerGroup, LabelSelector, validate::Validated};
use crate::controller::cache::SlimPod;
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::objects::{pods, rollout};
use crate::rotation::{
    Consumer, Group, GroupObs, Nudge, Refusals, Search, Version, WorkloadId, WorkloadKind,
    WorkloadObs,
};
use crate::wire as k;

/// Role name of a group in report annotations.
pub fn role(g: Group) -> &'static str {
    match g {
        Group::Verifiers => k::ROLE_VERIFIER,
        Group::Presenters => k::ROLE_PRESENTER,
    }
}

/// What the planner reads of the consumers.
pub struct Consumers {
    pub verifiers: GroupObs,
    pub presenters: GroupObs,
    /// Latest time any verifier saw each version presented.
    pub traffic: BTreeMap<Version, Timestamp>,
}

/// The pods of one namespace the rotation reaches: its own (`home`) or one
/// holding copies of `secrets`.
#[derive(Clone, Debug)]
pub struct Found {
    pub namespace: String,
    pub home: bool,
    /// The Secrets copied there (every projected Secret at home).
    pub secrets: Vec<String>,
    pub pods: Vec<Arc<SlimPod>>,
}

impl Found {
    /// Whether the group reading `secret` has consumers here.
    fn holds(&self, secret: &str) -> bool {
        self.home || self.secrets.iter().any(|s| s == secret)
    }

    /// How status and the planner name a pod: its name at home, else
    /// `<namespace>/<name>` (pod names never hold a `/`).
    fn id(&self, pod: &SlimPod) -> String {
        if self.home {
            pod.name.to_string()
        } else {
            format!("{}/{}", self.namespace, pod.name)
        }
    }
}

/// The namespace and pod name of a consumer id ([`Found::id`]), `home`
/// when it names none.
pub fn split_id<'a>(id: &'a str, home: &'a str) -> (&'a str, &'a str) {
    id.split_once('/').unwrap_or((home, id))
}

/// Where the rotation's consumers may be: its namespace, and each namespace
/// holding a copy (with the Secrets copied there).
pub fn places(rot: &ApiKeyRotation, v: &Validated, reached: &Reached) -> Vec<Found> {
    let home = Found {
        namespace: rot.namespace().unwrap_or_default(),
        home: true,
        secrets: vec![v.verifier_secret.clone(), v.presenter_secret.clone()],
        pods: Vec::new(),
    };
    let mut out = vec![home];
    for w in &reached.wanted {
        match out
            .iter_mut()
            .find(|f| !f.home && f.namespace == w.namespace)
        {
            Some(f) => f.secrets.push(w.name.clone()),
            None => out.push(Found {
                namespace: w.namespace.clone(),
                home: false,
                secrets: vec![w.name.clone()],
                pods: Vec::new(),
            }),
        }
    }
    out
}

/// One consistent snapshot per namespace of the rotation's pods from the
/// caches (see `fresh`): those that reference its Secrets or match its
/// selectors.
pub fn pods(rot: &ApiKeyRotation, ctx: &Context, mut places: Vec<Found>) -> Vec<Found> {
    let selectors: Vec<&LabelSelector> = [
        &rot.spec.consumers.verifiers,
        &rot.spec.consumers.presenters,
    ]
    .iter()
    .filter_map(|g| g.selector.as_ref())
    .collect();
    for f in &mut places {
        let secrets: Vec<&str> = f.secrets.iter().map(String::as_str).collect();
        f.pods = if f.home {
            ctx.pods.consumers(&f.namespace, &secrets, &selectors)
        } else {
            ctx.reach
                .pods_in(&f.namespace)
                .map(|c| c.consumers(&f.namespace, &secrets, &selectors))
                .unwrap_or_default()
        };
    }
    places
}

/// The consumer groups and traffic among `found` (pods from the cache or
/// freshly listed; pods of other groups are ignored), with the nudges this
/// process sent, which the pods may not show yet.
pub async fn observe(
    rot: &ApiKeyRotation,
    v: &Validated,
    ctx: &Context,
    found: &[Found],
    reached: &Reached,
) -> Result<Consumers> {
    let name = rot.name_any();
    let spec = &rot.spec.consumers;
    let groups = [
        (Group::Verifiers, &spec.verifiers, &v.verifier_secret),
        (Group::Presenters, &spec.presenters, &v.presenter_secret),
    ];
    let mut obs = Vec::with_capacity(2);
    for (g, group, secret) in groups {
        let mut o = group_obs(rot, g, group, secret, found, ctx).await?;
        o.search.required = reached.targets.required(g);
        obs.push(o);
    }
    let (mut presenters, mut verifiers) = (obs.pop().unwrap(), obs.pop().unwrap());
    let obj = ObjectRef::from_obj(rot);
    ctx.memory
        .recall_nudges(&obj, [&mut verifiers, &mut presenters]);
    Ok(Consumers {
        verifiers,
        presenters,
        traffic: traffic(&name, &v.verifier_secret, &spec.verifiers, found),
    })
}

/// A group is every running pod that references its Secret, plus pods its
/// selector adds, in every namespace holding it: no consumer can be
/// forgotten. Yields each with its id.
fn members<'a>(
    group: &'a ConsumerGroup,
    secret: &'a str,
    found: &'a [Found],
) -> impl Iterator<Item = (String, &'a Arc<SlimPod>)> {
    found
        .iter()
        .filter(move |f| f.holds(secret))
        .flat_map(move |f| {
            f.pods
                .iter()
                .filter(move |p| p.running && p.consumes(secret, group.selector.as_ref()))
                .map(move |p| (f.id(p), p))
        })
}

async fn group_obs(
    rot: &ApiKeyRotation,
    g: Group,
    group: &ConsumerGroup,
    secret: &str,
    found: &[Found],
    ctx: &Context,
) -> Result<GroupObs> {
    let rotation = rot.name_any();
    let report_key = k::report(&rotation, role(g));
    let nudge_key = k::nudge(&rotation);
    let consumers = members(group, secret, found)
        .map(|(id, p)| {
            let ann = &p.annotations;
            Consumer {
                pod: id,
                reported: ann
                    .get(&report_key)
                    .and_then(|v| RevisionReport::parse(v).ok())
                    .map(|r| r.0),
                nudge: ann.get(&nudge_key).and_then(nudge),
                env: p.reads_env(secret),
            }
        })
        .collect();
    let ns = rot.namespace().unwrap_or_default();
    let search = Search {
        namespace: ns.clone(),
        secret: secret.to_string(),
        selector: group.selector.as_ref().map(pods::selector_text),
        required: Vec::new(),
    };
    let mut workloads = Vec::new();
    for w in &group.workloads {
        let id = WorkloadId {
            kind: w.kind,
            name: w.name.clone(),
        };
        if let Some(obs) = workload(&ctx.client, &ns, &id, &report_key).await? {
            workloads.push(obs);
        }
    }
    Ok(GroupObs {
        consumers,
        workloads,
        search,
    })
}

/// The last nudge a pod carries, in the planner's terms (a value that does
/// not read counts as none: the planner nudges again, bounded).
fn nudge(value: &str) -> Option<Nudge> {
    let k::Nudge {
        revision,
        attempt,
        at,
    } = k::Nudge::parse(value).ok()?;
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
    found: &[Found],
) -> BTreeMap<Version, Timestamp> {
    let key = k::last_seen(rotation);
    let mut out: BTreeMap<Version, Timestamp> = BTreeMap::new();
    for (_, p) in members(group, secret, found) {
        // Entries that do not read are skipped; a value over its caps
        // counts as none (a pod writes its own annotations: bounded).
        let Some(seen) = p
            .annotations
            .get(&key)
            .and_then(|t| LastSeen::parse_lenient(t).ok())
        else {
            continue;
        };
        for (v, t) in seen.value.0 {
            let e = out.entry(v).or_insert(t);
            *e = (*e).max(t);
        }
    }
    out
}

/// What each running verifier pod's endpoint refused, from its `traffic`
/// annotation, where it has one.
pub fn refusals(
    rot: &ApiKeyRotation,
    v: &Validated,
    found: &[Found],
) -> BTreeMap<String, Refusals> {
    let key = k::traffic(&rot.name_any());
    members(&rot.spec.consumers.verifiers, &v.verifier_secret, found)
        .filter_map(|(id, p)| {
            let t = Traffic::parse_lenient(p.annotations.get(&key)?).ok()?.value;
            let refused = Refusals {
                total: t.retired_total(),
                versions: t.retired.keys().copied().collect(),
                client: t.client.map(|c| c.to_string()),
            };
            Some((id, refused))
        })
        .collect()
}

/// A referenced workload: the revision stamped in its pod template and
/// whether its rollout has finished (`None`: it does not exist).
async fn workload(
    client: &kube::Client,
    ns: &str,
    id: &WorkloadId,
    key: &str,
) -> Result<Option<WorkloadObs>> {
    let stamp = |t: Option<&PodTemplateSpec>| {
        t?.metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(key)?
            .parse()
            .ok()
    };
    let obs = match id.kind {
        WorkloadKind::Deployment => get::<Deployment>(client, ns, &id.name).await?.map(|d| {
            let template = d.spec.as_ref().map(|s| &s.template);
            (stamp(template), rollout::deployment_done(&d))
        }),
        WorkloadKind::StatefulSet => get::<StatefulSet>(client, ns, &id.name).await?.map(|d| {
            let template = d.spec.as_ref().map(|s| &s.template);
            (stamp(template), rollout::statefulset_done(&d))
        }),
        WorkloadKind::DaemonSet => get::<DaemonSet>(client, ns, &id.name).await?.map(|d| {
            let template = d.spec.as_ref().map(|s| &s.template);
            (stamp(template), rollout::daemonset_done(&d))
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
