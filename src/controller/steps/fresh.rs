//! Fresh enough to decide: a promote or retire step is taken only on a view of
//! the consumer pods at least as fresh as the projected Secret write whose
//! confirmations it counts.
//!
//! Secrets are read with GET/LIST (consistent reads on a real apiserver) and
//! written with a resourceVersion precondition, so they are never stale when a
//! write lands. Pods come from a watch cache, which can lag: a pod created just
//! before the verifier Secret was staged, still on the old content and missing
//! from the cache, would be forgotten by a promotion computed on that cache.
//!
//! Two ways to know the cache is fresh enough:
//!
//! - **A witness in the snapshot.** A pod of the counted group that reports a
//!   revision at least the one written for the step wrote that report *after*
//!   the Secret write (it loaded the written content first). The pod watch
//!   delivers pod events in the order the API server committed them, and the
//!   cache applies them in that order and is read as one snapshot under one
//!   lock (`index::PodCache::consumers`); after a relist it is replaced whole by
//!   the list's own consistent snapshot. So a snapshot that holds the report
//!   holds every pod event committed before it, among them the creation of any
//!   pod that existed before the Secret write. No resourceVersion is compared
//!   (they are opaque, and only comparable within one resource type anyway).
//! - **Otherwise** (no pod of the group has reported yet, e.g. an empty group,
//!   Delay or Rollout mode), the pods are listed from the API with
//!   `resourceVersionMatch=NotOlderThan` the dependency's resourceVersion, the
//!   plan is computed again, and the step is taken only if the fresh plan takes
//!   it too.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, VersionMatch};
use kube::{Api, Client};
use tracing::info;

use super::consumers;
use super::observe::Snapshot;
use crate::api::{ApiKeyRotation, validate::Validated};
use crate::controller::cache::SlimPod;
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::rotation::{Action, Group, Observed, Plan, Revision, Target, plan};

/// `decided` if the pods it counted on are fresh enough, else the plan on
/// freshly listed pods if it decides the same, with the snapshot it was
/// made on; `None` when the cache lags behind the Secrets (wait for it
/// rather than decide on it).
pub async fn fresh(
    decided: Plan,
    mut snap: Snapshot,
    rot: &ApiKeyRotation,
    validated: &Validated,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<(Plan, Snapshot)>> {
    let Some(dep) = dependency(&decided, &snap).filter(|dep| !witnessed(dep, &snap.observed))
    else {
        return Ok(Some((decided, snap)));
    };
    let mut places = snap.places.clone();
    for place in &mut places {
        place.pods = pods_since(&ctx.client, &place.namespace, &dep.resource_version).await?;
    }
    let found = consumers::observe(rot, validated, ctx, &places, &snap.reached).await?;
    let observed = &mut snap.observed;
    (observed.verifiers, observed.presenters, observed.traffic) =
        (found.verifiers, found.presenters, found.traffic);
    let again = plan(&validated.policy, &snap.observed, now);
    if same_decision(&decided, &again) {
        Ok(Some((again, snap)))
    } else {
        info!(stage = ?decided.report.stage, "pod cache behind the Secrets; step deferred");
        Ok(None)
    }
}

/// The Secret write a promote or retire step depends on.
#[derive(Clone, Debug, PartialEq)]
struct Dependency {
    /// resourceVersion of the projected Secret as read.
    pub resource_version: String,
    /// The group whose confirmations the step counts.
    pub group: Group,
    /// The revision that group must have loaded.
    pub revision: Revision,
}

/// The projected Secret write the plan's promote or retire step depends on,
/// if it takes one: a promotion counts verifiers' confirmations of the
/// verifier Secret, a retirement counts presenters' confirmations of the
/// presenter Secret.
fn dependency(plan: &Plan, obs: &Snapshot) -> Option<Dependency> {
    let (verifier, presenter) = (
        obs.observed.verifier.as_ref()?,
        obs.observed.presenter.as_ref(),
    );
    let dep = |s: &Option<Secret>, group: Group, revision: Revision| {
        Some(Dependency {
            resource_version: s.as_ref()?.metadata.resource_version.clone()?,
            group,
            revision,
        })
    };
    let mut promotes = false;
    let mut retires = false;
    for a in &plan.actions {
        let Action::WriteProjection {
            target,
            accepted,
            current,
            ..
        } = a
        else {
            continue;
        };
        if matches!(target, Target::Presenter | Target::Combined)
            && presenter.is_some_and(|p| p.current.is_some() && p.current != *current)
        {
            promotes = true;
        }
        if matches!(target, Target::Verifier | Target::Combined)
            && !accepted.is_superset(&verifier.accepted)
        {
            retires = true;
        }
    }
    if retires {
        let revision = presenter.map_or(0, |p| p.revision);
        dep(&obs.material.presenter_secret, Group::Presenters, revision)
    } else if promotes {
        dep(
            &obs.material.verifier_secret,
            Group::Verifiers,
            verifier.revision,
        )
    } else {
        None
    }
}

/// Whether the pod snapshot `observed` was built from holds a witness of the
/// dependency: a pod of its group that reports its revision or a later one.
fn witnessed(dep: &Dependency, observed: &Observed) -> bool {
    let group = match dep.group {
        Group::Verifiers => &observed.verifiers,
        Group::Presenters => &observed.presenters,
    };
    group
        .consumers
        .iter()
        .any(|c| c.reported.is_some_and(|r| r >= dep.revision))
}

/// The namespace's pods, listed from the API no older than `rv` (a
/// resourceVersion of another namespace's Secret: one etcd, one sequence).
async fn pods_since(client: &Client, ns: &str, rv: &str) -> Result<Vec<Arc<SlimPod>>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default()
        .at(rv)
        .matching(VersionMatch::NotOlderThan);
    Ok(api
        .list(&params)
        .await?
        .items
        .into_iter()
        .map(|p| Arc::new(SlimPod::from_pod(&p)))
        .collect())
}

/// Whether two plans make the same decision: the same Secret writes and
/// deletions (nudges may differ: they follow the pods).
fn same_decision(a: &Plan, b: &Plan) -> bool {
    let decisive = |p: &Plan| -> Vec<Action> {
        p.actions
            .iter()
            .filter(|a| !matches!(a, Action::Nudge { .. }))
            .cloned()
            .collect()
    };
    decisive(a) == decisive(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Consumer;

    fn observed(reports: &[Option<Revision>]) -> Observed {
        let mut o = Observed::default();
        o.verifiers.consumers = reports
            .iter()
            .enumerate()
            .map(|(i, r)| Consumer {
                pod: format!("p{i}"),
                reported: *r,
                nudge: None,
                env: false,
            })
            .collect();
        o
    }

    fn dep(revision: Revision) -> Dependency {
        Dependency {
            resource_version: "7".into(),
            group: Group::Verifiers,
            revision,
        }
    }

    #[test]
    fn a_report_of_the_written_revision_witnesses_the_write() {
        assert!(witnessed(&dep(3), &observed(&[None, Some(3)])));
        assert!(witnessed(&dep(3), &observed(&[Some(4)])));
    }

    #[test]
    fn without_a_report_of_the_written_revision_the_pods_are_listed() {
        assert!(!witnessed(&dep(3), &observed(&[Some(2), None])));
        assert!(!witnessed(&dep(3), &observed(&[])));
        let mut presenters = dep(3);
        presenters.group = Group::Presenters;
        assert!(!witnessed(&presenters, &observed(&[Some(3)])));
    }
}
