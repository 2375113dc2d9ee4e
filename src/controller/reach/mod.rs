//! What every watched scope shares, so a rotation reaches consumers in
//! other namespaces (`consumers.<group>.namespaces`): the Namespaces (for
//! consent and selectors), the copies keyrotor keeps there, each scope's
//! pod cache, and the routes that carry a change seen by one scope's
//! watches to the controller of the rotation it concerns.
//!
//! In cluster-wide mode there is one scope and all of this is local; with
//! `watchNamespaces` a pod of `billing` must wake a rotation of `orders`,
//! which another scope's controller runs.

mod copies;
mod namespaces;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

pub use copies::{Copies, CopyObs, Feeder};
pub use namespaces::Namespaces;

use super::cache::{PodCache, SlimPod};
use super::objects::copy::Source;
use super::objects::targets::{NamespaceInfo, View};
use crate::api::{ApiKeyRotation, ConsumerGroup, LabelSelector};

/// A rotation whose groups name other namespaces.
#[derive(Clone, Debug, PartialEq)]
struct Cross {
    secrets: [String; 2],
    selectors: Vec<LabelSelector>,
}

fn reaches(g: &ConsumerGroup) -> bool {
    !g.namespaces.is_empty() || g.namespace_selector.is_some()
}

fn cross(rot: &ApiKeyRotation) -> Option<Cross> {
    let c = &rot.spec.consumers;
    (reaches(&c.verifiers) || reaches(&c.presenters)).then(|| Cross {
        secrets: [
            rot.spec.secrets.verifier.clone(),
            rot.spec.secrets.presenter.clone(),
        ],
        selectors: [&c.verifiers, &c.presenters]
            .iter()
            .filter_map(|g| g.selector.clone())
            .collect(),
    })
}

type Route = UnboundedSender<ObjectRef<ApiKeyRotation>>;

/// Shared by every scope for the life of the process.
#[derive(Default)]
pub struct Reach {
    pub namespaces: Namespaces,
    pub copies: Copies,
    /// Watch only these namespaces (empty: all).
    watched: Vec<String>,
    pods: RwLock<HashMap<Feeder, Arc<PodCache>>>,
    routes: RwLock<HashMap<Feeder, Route>>,
    /// Rotations whose groups name other namespaces, by (namespace, name).
    cross: RwLock<HashMap<(String, String), Cross>>,
    /// Why the namespace watch last failed, until it lists again.
    namespace_error: RwLock<Option<String>>,
}

impl Reach {
    pub fn new(watched: Vec<String>) -> Reach {
        Reach {
            watched,
            ..Default::default()
        }
    }

    /// A scope (re)starts with its pod cache: returns the changes other
    /// scopes route to its controller.
    pub fn scope(
        &self,
        feeder: &Feeder,
        pods: Arc<PodCache>,
    ) -> UnboundedReceiver<ObjectRef<ApiKeyRotation>> {
        let (tx, rx) = unbounded();
        self.copies.register(feeder);
        write(&self.pods).insert(feeder.clone(), pods);
        write(&self.routes).insert(feeder.clone(), tx);
        rx
    }

    /// The pod cache that holds the pods of `ns` (`None`: not watched).
    pub fn pods_in(&self, ns: &str) -> Option<Arc<PodCache>> {
        let pods = read(&self.pods);
        pods.get(&Some(ns.to_string()))
            .or_else(|| pods.get(&None))
            .cloned()
    }

    /// Whether keyrotor watches `ns`.
    pub fn watches(&self, ns: &str) -> bool {
        self.watched.is_empty() || self.watched.iter().any(|w| w == ns)
    }

    /// Wakes a rotation, whichever scope runs it.
    pub fn route(&self, r: ObjectRef<ApiKeyRotation>) {
        let routes = read(&self.routes);
        let to = r
            .namespace
            .as_ref()
            .and_then(|ns| routes.get(&Some(ns.clone())))
            .or_else(|| routes.get(&None));
        if let Some(tx) = to {
            // A closed route is a scope restarting: it relists everything.
            let _ = tx.unbounded_send(r);
        }
    }

    fn route_source(&self, s: Source) {
        self.route(ObjectRef::new(&s.rotation).within(&s.namespace));
    }

    /// Keeps the cross-namespace rotations current (rotation watch events).
    pub fn on_rotation(&self, event: &Event<ApiKeyRotation>) {
        let id = |r: &ApiKeyRotation| (r.namespace().unwrap_or_default(), r.name_any());
        let mut cross_map = write(&self.cross);
        match event {
            Event::Apply(r) | Event::InitApply(r) => match cross(r) {
                Some(c) => {
                    cross_map.insert(id(r), c);
                }
                None => {
                    cross_map.remove(&id(r));
                }
            },
            Event::Delete(r) => {
                cross_map.remove(&id(r));
            }
            Event::Init | Event::InitDone => {}
        }
    }

    /// A pod of `ns` changed: wakes the rotations of other namespaces it
    /// may be a consumer of (it references one of their copies there, or
    /// a group selector of a cross-namespace rotation matches it).
    pub fn on_pod(&self, ns: &str, pod: &SlimPod) {
        for source in self.copies.sources_in(ns, &pod.secrets) {
            if source.namespace != ns {
                self.route_source(source);
            }
        }
        let woken: Vec<(String, String)> = read(&self.cross)
            .iter()
            .filter(|((home, _), c)| {
                home != ns
                    && (c.secrets.iter().any(|s| pod.references(s))
                        || c.selectors.iter().any(|s| pod.selected_by(s)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for (home, name) in woken {
            self.route(ObjectRef::new(&name).within(&home));
        }
    }

    /// A Namespace changed: consent or labels may have: wakes every
    /// cross-namespace rotation.
    pub fn on_namespace(&self) {
        let all: Vec<(String, String)> = read(&self.cross).keys().cloned().collect();
        for (home, name) in all {
            self.route(ObjectRef::new(&name).within(&home));
        }
    }

    /// The namespace watch failed (`Some`) or works again (`None`).
    pub fn namespace_watch(&self, error: Option<String>) {
        *write(&self.namespace_error) = error;
    }

    /// Why Namespaces cannot be read, while they cannot.
    pub fn namespace_error(&self) -> Option<String> {
        read(&self.namespace_error).clone()
    }

    /// A copy changed (edited, deleted, written): wakes its rotation.
    pub fn on_copy(&self, source: Option<Source>) {
        if let Some(s) = source {
            self.route_source(s);
        }
    }
}

impl View for Reach {
    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.get(name).map(|i| (*i).clone())
    }

    fn matching(&self, selector: &LabelSelector) -> Vec<String> {
        self.namespaces.matching(selector)
    }

    fn watched(&self, ns: &str) -> bool {
        self.watches(ns)
    }

    /// A pod cache that has not listed yet (or no cache) cannot say "no
    /// pod": missing evidence keeps the copy.
    fn referenced(&self, ns: &str, secret: &str) -> bool {
        self.pods_in(ns)
            .is_none_or(|p| !p.is_ready() || !p.consumers(ns, &[secret], &[]).is_empty())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, secret: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "billing"},
            "spec": {"containers": [], "volumes": [{"name": "k", "secret": {"secretName": secret}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    #[test]
    fn a_copy_counts_as_read_until_a_listed_cache_shows_no_pod_reading_it() {
        let reach = Reach::new(vec!["orders".into(), "billing".into()]);
        assert!(
            reach.referenced("billing", "api-key"),
            "no cache for billing yet"
        );
        let cache = Arc::new(PodCache::default());
        let _routed = reach.scope(&Some("billing".into()), cache.clone());
        cache.apply(&Event::Init);
        assert!(
            reach.referenced("billing", "api-key"),
            "listing, not listed"
        );
        cache.apply(&Event::InitApply(pod("client", "api-key")));
        cache.apply(&Event::InitDone);
        assert!(reach.referenced("billing", "api-key"));
        cache.apply(&Event::Delete(pod("client", "api-key")));
        assert!(
            !reach.referenced("billing", "api-key"),
            "listed, and nobody reads it"
        );
    }
}
