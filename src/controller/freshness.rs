//! Fresh enough to decide: a promote or retire step is taken only on a view of
//! the consumer pods at least as fresh as the projected Secret write whose
//! confirmations it counts.
//!
//! Secrets are read with GET/LIST (consistent reads on a real apiserver) and
//! written with a resourceVersion precondition, so they are never stale when a
//! write lands. Pods come from a watch cache, which can lag: a pod created just
//! before the verifier Secret was staged, still on the old content and missing
//! from the cache, would be forgotten by a promotion computed on that cache.
//! So before such a step the pods are listed from the API with
//! `resourceVersionMatch=NotOlderThan` the dependency's resourceVersion, the
//! plan is computed again, and the step is taken only if the fresh plan takes
//! it too.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, VersionMatch};
use kube::{Api, Client};

use super::error::Result;
use super::observe::Observation;
use super::pods;
use crate::rotation::{Action, Plan, Target};

/// The resourceVersion of the projected Secret whose write the plan's
/// promote or retire step depends on, if it takes one: a promotion counts
/// verifiers' confirmations of the verifier Secret, a retirement counts
/// presenters' confirmations of the presenter Secret.
pub fn dependency(plan: &Plan, obs: &Observation) -> Option<String> {
    let (verifier, presenter) = (
        obs.observed.verifier.as_ref()?,
        obs.observed.presenter.as_ref(),
    );
    let rv = |s: &Option<Secret>| s.as_ref().and_then(|s| s.metadata.resource_version.clone());
    let mut promotes = false;
    let mut retires = false;
    for a in &plan.actions {
        let Action::Publish {
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
        rv(&obs.presenter_secret)
    } else if promotes {
        rv(&obs.verifier_secret)
    } else {
        None
    }
}

/// The namespace's pods, listed from the API no older than `rv`.
pub async fn pods_since(client: &Client, ns: &str, rv: &str) -> Result<Vec<Arc<Pod>>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default()
        .at(rv)
        .matching(VersionMatch::NotOlderThan);
    Ok(api
        .list(&params)
        .await?
        .items
        .into_iter()
        .map(|mut p| {
            pods::strip(&mut p);
            Arc::new(p)
        })
        .collect())
}

/// Whether two plans make the same decision: the same Secret writes and
/// deletions (nudges may differ: they follow the pods).
pub fn same_decision(a: &Plan, b: &Plan) -> bool {
    let decisive = |p: &Plan| -> Vec<Action> {
        p.actions
            .iter()
            .filter(|a| !matches!(a, Action::Nudge { .. }))
            .cloned()
            .collect()
    };
    decisive(a) == decisive(b)
}
