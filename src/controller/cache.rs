//! The operator's own caches, indexed for the lookups a reconcile makes:
//! consumer pods by namespace and by the Secrets they reference (so a
//! reconcile reads its own pods, not every pod of the namespace), and
//! rotations by the Secrets they project (so a pod event maps to its
//! rotations without scanning them all).
//!
//! Both are fed from watch events in order, and a read takes one consistent
//! snapshot under one lock: the freshness step (`steps/fresh.rs`) relies on a
//! snapshot holding every pod event before the newest one it shows.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use super::objects::pods::{env_secret_refs, is_running, secret_refs, selector_matches_with};
use crate::api::{ApiKeyRotation, LabelSelector};

/// A pod's labels or keyrotor annotations: a sorted boxed slice, a fraction
/// of a `BTreeMap`'s footprint for the two or three entries a pod has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pairs(Box<[(Box<str>, Box<str>)]>);

impl Pairs {
    fn from_map<'a>(map: impl Iterator<Item = (&'a String, &'a String)>) -> Pairs {
        Pairs(
            map.map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What keyrotor keeps of a pod: about a hundred bytes instead of a full Pod.
#[derive(Clone, Debug, PartialEq)]
pub struct SlimPod {
    pub name: Arc<str>,
    pub labels: Pairs,
    /// Only keyrotor's annotations (`…keyrotor.dev/…`).
    pub annotations: Pairs,
    /// Names of the Secrets its spec references (volumes, projected, env, envFrom).
    pub secrets: Box<[Box<str>]>,
    /// Those of `secrets` its containers read through env or envFrom (see
    /// `pods::env_secret_refs`): it cannot load a new version of them.
    pub env_secrets: Box<[Box<str>]>,
    /// Running (see `pods::is_running`).
    pub running: bool,
}

impl SlimPod {
    pub fn from_pod(pod: &Pod) -> SlimPod {
        let ann = pod.annotations();
        SlimPod {
            name: pod.name_any().into(),
            labels: Pairs::from_map(pod.labels().iter()),
            annotations: Pairs::from_map(
                ann.iter()
                    .filter(|(k, _)| k.contains(crate::wire::POD_ANNOTATION_DOMAIN)),
            ),
            secrets: pod
                .spec
                .as_ref()
                .map(secret_refs)
                .unwrap_or_default()
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            env_secrets: pod
                .spec
                .as_ref()
                .map(env_secret_refs)
                .unwrap_or_default()
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            running: is_running(pod),
        }
    }

    /// Whether its spec references `secret`.
    pub fn references(&self, secret: &str) -> bool {
        self.secrets.iter().any(|s| s.as_ref() == secret)
    }

    /// Whether it reads `secret` through an environment variable.
    pub fn reads_env(&self, secret: &str) -> bool {
        self.env_secrets.iter().any(|s| s.as_ref() == secret)
    }

    /// Whether `selector` matches its labels.
    pub fn selected_by(&self, selector: &LabelSelector) -> bool {
        selector_matches_with(selector, |k| self.labels.get(k))
    }

    /// Whether it belongs to a group: it references `secret`, or `selector` matches it.
    pub fn consumes(&self, secret: &str, selector: Option<&LabelSelector>) -> bool {
        self.references(secret) || selector.is_some_and(|s| self.selected_by(s))
    }
}

#[derive(Default)]
struct Namespace {
    pods: HashMap<Arc<str>, Arc<SlimPod>>,
    by_secret: HashMap<String, BTreeSet<Arc<str>>>,
}

impl Namespace {
    fn insert(&mut self, pod: SlimPod) {
        self.remove(&pod.name);
        for s in pod.secrets.iter() {
            self.by_secret
                .entry(s.to_string())
                .or_default()
                .insert(pod.name.clone());
        }
        self.pods.insert(pod.name.clone(), Arc::new(pod));
    }

    fn remove(&mut self, name: &str) {
        let Some(old) = self.pods.remove(name) else {
            return;
        };
        for s in old.secrets.iter() {
            if let Some(names) = self.by_secret.get_mut(s.as_ref()) {
                names.remove(name);
                if names.is_empty() {
                    self.by_secret.remove(s.as_ref());
                }
            }
        }
    }
}

type Namespaces = HashMap<String, Namespace>;

#[derive(Default)]
struct PodState {
    namespaces: Namespaces,
    /// A relist in progress: its pods replace the cache at `InitDone`.
    relist: Option<Namespaces>,
}

/// The slim pod cache, indexed by namespace and referenced Secret.
#[derive(Default)]
pub struct PodCache {
    state: RwLock<PodState>,
    ready: AtomicBool,
}

fn insert(namespaces: &mut Namespaces, pod: &Pod) {
    namespaces
        .entry(pod.namespace().unwrap_or_default())
        .or_default()
        .insert(SlimPod::from_pod(pod));
}

impl PodCache {
    /// Applies one watch event, in order. Returns the pods it touched, as
    /// (namespace, pod), for mapping to the rotations to reconcile.
    pub fn apply(&self, event: &Event<Pod>) -> Option<(String, Arc<SlimPod>)> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let touched = match event {
            Event::Apply(pod) | Event::Delete(pod) | Event::InitApply(pod) => {
                Some((pod.namespace().unwrap_or_default(), pod))
            }
            Event::Init | Event::InitDone => None,
        };
        match event {
            Event::Apply(pod) => insert(&mut st.namespaces, pod),
            Event::Delete(pod) => {
                if let Some(ns) = st.namespaces.get_mut(&pod.namespace().unwrap_or_default()) {
                    ns.remove(&pod.name_any());
                }
            }
            Event::Init => st.relist = Some(Namespaces::new()),
            Event::InitApply(pod) => match st.relist.as_mut() {
                Some(relist) => insert(relist, pod),
                None => insert(&mut st.namespaces, pod),
            },
            Event::InitDone => {
                if let Some(relist) = st.relist.take() {
                    st.namespaces = relist;
                }
                self.ready.store(true, Ordering::Release);
            }
        }
        touched.map(|(ns, pod)| (ns, Arc::new(SlimPod::from_pod(pod))))
    }

    /// Whether the first full list has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The pods of `ns` that reference one of `secrets` or match one of
    /// `selectors`, from one consistent snapshot of the cache.
    pub fn consumers(
        &self,
        ns: &str,
        secrets: &[&str],
        selectors: &[&LabelSelector],
    ) -> Vec<Arc<SlimPod>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let Some(n) = st.namespaces.get(ns) else {
            return Vec::new();
        };
        if !selectors.is_empty() {
            // A selector can match any pod of the namespace.
            return n
                .pods
                .values()
                .filter(|p| {
                    secrets.iter().any(|s| p.references(s))
                        || selectors.iter().any(|s| p.selected_by(s))
                })
                .cloned()
                .collect();
        }
        let names: BTreeSet<&Arc<str>> = secrets
            .iter()
            .filter_map(|s| n.by_secret.get(*s))
            .flatten()
            .collect();
        names
            .into_iter()
            .filter_map(|name| n.pods.get(name).cloned())
            .collect()
    }

    /// Pods held (for tests and metrics).
    pub fn len(&self) -> usize {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.namespaces.values().map(|n| n.pods.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the pod → rotation mapping needs of a rotation.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    secrets: [String; 2],
    selectors: Vec<LabelSelector>,
}

fn entry(rot: &ApiKeyRotation) -> Entry {
    let s = &rot.spec;
    Entry {
        secrets: [s.secrets.verifier.clone(), s.secrets.presenter.clone()],
        selectors: [&s.consumers.verifiers, &s.consumers.presenters]
            .iter()
            .filter_map(|g| g.selector.clone())
            .collect(),
    }
}

#[derive(Default)]
struct RotationState {
    /// (namespace, name) → entry.
    entries: HashMap<(String, String), Entry>,
    /// (namespace, Secret) → rotation names projecting it.
    by_secret: HashMap<(String, String), BTreeSet<String>>,
    /// namespace → rotations with a selector.
    with_selector: HashMap<String, BTreeSet<String>>,
    relist: Option<Vec<(String, String, Entry)>>,
}

impl RotationState {
    fn remove(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        let Some(old) = self.entries.remove(&key) else {
            return;
        };
        for s in &old.secrets {
            let k = (ns.to_string(), s.clone());
            if let Some(names) = self.by_secret.get_mut(&k) {
                names.remove(name);
                if names.is_empty() {
                    self.by_secret.remove(&k);
                }
            }
        }
        if let Some(names) = self.with_selector.get_mut(ns) {
            names.remove(name);
        }
    }

    fn insert(&mut self, ns: String, name: String, e: Entry) {
        self.remove(&ns, &name);
        for s in &e.secrets {
            self.by_secret
                .entry((ns.clone(), s.clone()))
                .or_default()
                .insert(name.clone());
        }
        if !e.selectors.is_empty() {
            self.with_selector
                .entry(ns.clone())
                .or_default()
                .insert(name.clone());
        }
        self.entries.insert((ns, name), e);
    }
}

/// Rotations by the Secrets they project and by namespace (for selectors).
#[derive(Default)]
pub struct RotationIndex {
    state: RwLock<RotationState>,
}

impl RotationIndex {
    /// Applies one watch event of the rotation watcher, in order.
    pub fn apply(&self, event: &Event<ApiKeyRotation>) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let id = |r: &ApiKeyRotation| (r.namespace().unwrap_or_default(), r.name_any());
        match event {
            Event::Apply(r) => {
                let (ns, name) = id(r);
                st.insert(ns, name, entry(r));
            }
            Event::Delete(r) => {
                let (ns, name) = id(r);
                st.remove(&ns, &name);
            }
            Event::Init => st.relist = Some(Vec::new()),
            Event::InitApply(r) => {
                let (ns, name) = id(r);
                match st.relist.as_mut() {
                    Some(relist) => relist.push((ns, name, entry(r))),
                    None => st.insert(ns, name, entry(r)),
                }
            }
            Event::InitDone => {
                if let Some(relist) = st.relist.take() {
                    *st = RotationState::default();
                    for (ns, name, e) in relist {
                        st.insert(ns, name, e);
                    }
                }
            }
        }
    }

    /// The rotations a pod consumes: it references one of their projected
    /// Secrets, or a group's selector matches it.
    pub fn rotations_for(&self, ns: &str, pod: &SlimPod) -> Vec<ObjectRef<ApiKeyRotation>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut names: BTreeSet<&String> = pod
            .secrets
            .iter()
            .filter_map(|s| st.by_secret.get(&(ns.to_string(), s.to_string())))
            .flatten()
            .collect();
        for name in st.with_selector.get(ns).into_iter().flatten() {
            let matches = st
                .entries
                .get(&(ns.to_string(), name.clone()))
                .is_some_and(|e| e.selectors.iter().any(|s| pod.selected_by(s)));
            if matches {
                names.insert(name);
            }
        }
        names
            .into_iter()
            .map(|n| ObjectRef::new(n).within(ns))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, secret: &str, app: &str, reported: Option<&str>) -> Pod {
        let mut ann = serde_json::Map::new();
        if let Some(r) = reported {
            let report = crate::wire::report("a", crate::wire::ROLE_VERIFIER);
            ann.insert(report, r.into());
        }
        ann.insert("other".into(), "x".into());
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "n", "labels": {"app": app}, "annotations": ann},
            "spec": {"containers": [], "volumes": [{"name": "k", "secret": {"secretName": secret}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn rotation(name: &str, selector: Option<serde_json::Value>) -> ApiKeyRotation {
        let mut spec = serde_json::json!({
            "secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
        });
        if let Some(sel) = selector {
            spec["consumers"] = serde_json::json!({"presenters": {"selector": sel}});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": crate::wire::API_VERSION, "kind": "ApiKeyRotation",
            "metadata": {"name": name, "namespace": "n"}, "spec": spec,
        }))
        .unwrap()
    }

    fn names(pods: &[Arc<SlimPod>]) -> Vec<String> {
        let mut v: Vec<String> = pods.iter().map(|p| p.name.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_reconcile_reads_only_the_pods_of_its_secrets() {
        let cache = PodCache::default();
        for (name, secret) in [("a", "a-verifier"), ("b", "a-key"), ("c", "c-key")] {
            cache.apply(&Event::Apply(pod(name, secret, "web", None)));
        }
        let got = cache.consumers("n", &["a-verifier", "a-key"], &[]);
        assert_eq!(names(&got), ["a", "b"]);
        assert!(cache.consumers("other", &["a-key"], &[]).is_empty());
        let kept = &got[0].annotations;
        assert!(kept.is_empty(), "only keyrotor annotations are kept");
        assert!(
            !got[0].reads_env("a-verifier"),
            "a volume is no env reference"
        );
    }

    #[test]
    fn a_pod_that_reads_a_secret_through_env_is_told_from_one_that_mounts_it() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "env", "namespace": "n"},
            "spec": {"containers": [{"name": "app", "image": "app",
                "env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "a-key", "key": "key"}}}]}],
                     "volumes": [{"name": "k", "secret": {"secretName": "a-verifier"}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let slim = SlimPod::from_pod(&pod);
        assert!(slim.references("a-key") && slim.reads_env("a-key"));
        assert!(slim.references("a-verifier") && !slim.reads_env("a-verifier"));
    }

    #[test]
    fn a_pod_that_changes_its_secrets_moves_in_the_index() {
        let cache = PodCache::default();
        cache.apply(&Event::Apply(pod("a", "x", "web", None)));
        cache.apply(&Event::Apply(pod("a", "y", "web", Some("3"))));
        assert!(cache.consumers("n", &["x"], &[]).is_empty());
        let got = cache.consumers("n", &["y"], &[]);
        assert_eq!(got[0].annotations.len(), 1);
        cache.apply(&Event::Delete(pod("a", "y", "web", None)));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_cache_only_when_complete() {
        let cache = PodCache::default();
        cache.apply(&Event::Apply(pod("gone", "x", "web", None)));
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(pod("new", "x", "web", None)));
        assert_eq!(names(&cache.consumers("n", &["x"], &[])), ["gone"]);
        assert!(!cache.is_ready());
        cache.apply(&Event::InitDone);
        assert_eq!(names(&cache.consumers("n", &["x"], &[])), ["new"]);
        assert!(cache.is_ready());
    }

    #[test]
    fn selectors_find_pods_that_reference_nothing() {
        let cache = PodCache::default();
        cache.apply(&Event::Apply(pod("a", "x", "web", None)));
        cache.apply(&Event::Apply(pod("b", "y", "db", None)));
        let sel: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"app": "db"}})).unwrap();
        assert_eq!(names(&cache.consumers("n", &["x"], &[&sel])), ["a", "b"]);
    }

    #[test]
    fn a_pod_maps_to_the_rotations_that_project_its_secrets_or_select_it() {
        let index = RotationIndex::default();
        index.apply(&Event::Apply(rotation("r1", None)));
        index.apply(&Event::Apply(rotation("r2", None)));
        index.apply(&Event::Apply(rotation(
            "r3",
            Some(serde_json::json!({"matchLabels": {"app": "db"}})),
        )));
        let refs = |p: &Pod| -> Vec<String> {
            index
                .rotations_for("n", &SlimPod::from_pod(p))
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(refs(&pod("p", "r2-key", "web", None)), ["r2"]);
        assert_eq!(refs(&pod("p", "r1-verifier", "db", None)), ["r1", "r3"]);
        index.apply(&Event::Delete(rotation("r2", None)));
        assert!(refs(&pod("p", "r2-key", "web", None)).is_empty());
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(rotation("r2", None)));
        index.apply(&Event::InitDone);
        assert_eq!(refs(&pod("p", "r2-key", "web", None)), ["r2"]);
        assert!(refs(&pod("p", "r1-key", "db", None)).is_empty());
    }
}
