//! The copies keyrotor keeps in other namespaces, as the Secret watches
//! show them: for each, the rotation it copies, a digest of its files and
//! its resourceVersion — never the files themselves.
//!
//! Several watches feed it (one per watched namespace, or one for the
//! cluster); a relist replaces only what its own watch covers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::controller::objects::copy::{self, Source};

/// One copy as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyObs {
    pub source: Source,
    /// [`copy::digest`] of its files.
    pub digest: [u8; 32],
    /// Its file names (never their content): a rewrite removes those the
    /// rotation's own Secret no longer has.
    pub files: Vec<String>,
    pub resource_version: Option<String>,
}

type Id = (String, String);

/// The watch feeding an entry: its namespace, or `None` for the cluster.
pub type Feeder = Option<String>;

#[derive(Default)]
struct State {
    copies: HashMap<Id, Arc<CopyObs>>,
    by_source: HashMap<Source, BTreeSet<Id>>,
    relists: HashMap<Feeder, Vec<(Id, Arc<CopyObs>)>>,
    ready: HashMap<Feeder, bool>,
}

impl State {
    fn insert(&mut self, id: Id, obs: Arc<CopyObs>) {
        self.remove(&id);
        self.by_source
            .entry(obs.source.clone())
            .or_default()
            .insert(id.clone());
        self.copies.insert(id, obs);
    }

    fn remove(&mut self, id: &Id) {
        if let Some(old) = self.copies.remove(id)
            && let Some(ids) = self.by_source.get_mut(&old.source)
        {
            ids.remove(id);
            if ids.is_empty() {
                self.by_source.remove(&old.source);
            }
        }
    }
}

fn id(secret: &Secret) -> Id {
    (secret.namespace().unwrap_or_default(), secret.name_any())
}

fn obs(secret: &Secret) -> Option<Arc<CopyObs>> {
    Some(Arc::new(CopyObs {
        source: copy::source_of(secret)?,
        digest: copy::digest(secret),
        files: secret
            .data
            .iter()
            .flatten()
            .map(|(f, _)| f.clone())
            .collect(),
        resource_version: secret.metadata.resource_version.clone(),
    }))
}

/// Every copy keyrotor keeps, by (namespace, name) and by source.
#[derive(Default)]
pub struct Copies {
    state: RwLock<State>,
}

impl Copies {
    /// A watch (re)starts: what it covers is not known until its list ends.
    pub fn register(&self, feeder: &Feeder) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.ready.insert(feeder.clone(), false);
    }

    /// Applies one event of `feeder`'s Secret watch, in order; returns the
    /// rotation whose copy it touched.
    pub fn apply(&self, feeder: &Feeder, event: &Event<Secret>) -> Option<Source> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(s) => {
                let o = obs(s)?;
                let source = o.source.clone();
                st.insert(id(s), o);
                Some(source)
            }
            Event::Delete(s) => {
                st.remove(&id(s));
                copy::source_of(s)
            }
            Event::Init => {
                st.relists.insert(feeder.clone(), Vec::new());
                None
            }
            Event::InitApply(s) => {
                let o = obs(s)?;
                match st.relists.get_mut(feeder) {
                    Some(relist) => relist.push((id(s), o)),
                    None => st.insert(id(s), o),
                }
                None
            }
            Event::InitDone => {
                if let Some(relist) = st.relists.remove(feeder) {
                    let covered: Vec<Id> = st
                        .copies
                        .keys()
                        .filter(|(ns, _)| feeder.as_ref().is_none_or(|f| f == ns))
                        .cloned()
                        .collect();
                    for gone in covered {
                        st.remove(&gone);
                    }
                    for (i, o) in relist {
                        st.insert(i, o);
                    }
                }
                st.ready.insert(feeder.clone(), true);
                None
            }
        }
    }

    /// Whether every registered watch has listed once.
    pub fn is_ready(&self) -> bool {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.ready.values().all(|r| *r)
    }

    /// A copy keyrotor just wrote: known before its watch event comes.
    pub fn record(&self, written: &Secret) {
        if let Some(o) = obs(written) {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            st.insert(id(written), o);
        }
    }

    /// A copy keyrotor just deleted.
    pub fn forget(&self, ns: &str, name: &str) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.remove(&(ns.to_string(), name.to_string()));
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<CopyObs>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.copies.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// The copies of `source`'s Secrets: (namespace, name), sorted.
    pub fn of(&self, source: &Source) -> Vec<(String, String)> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.by_source
            .get(source)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The rotations with a copy named one of `secrets` in `ns`.
    pub fn sources_in(&self, ns: &str, secrets: &[Box<str>]) -> Vec<Source> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        secrets
            .iter()
            .filter_map(|s| st.copies.get(&(ns.to_string(), s.to_string())))
            .map(|o| o.source.clone())
            .collect()
    }

    /// Copies held (for tests and the cost figures).
    pub fn len(&self) -> usize {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.copies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ns: &str, name: &str, source: Option<&str>, data: &str) -> Secret {
        let mut labels = serde_json::json!({"keyrotor.dev/rotation": "api"});
        if let Some(s) = source {
            labels["keyrotor.dev/source-namespace"] = s.into();
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "1"},
            "data": {"key": data}
        }))
        .unwrap()
    }

    #[test]
    fn only_copies_are_kept_and_a_relist_replaces_only_what_its_watch_covers() {
        let copies = Copies::default();
        let (a, b) = (Some("a".to_string()), Some("b".to_string()));
        copies.register(&a);
        copies.register(&b);
        assert!(!copies.is_ready());
        assert!(
            copies
                .apply(&a, &Event::Apply(secret("a", "home", None, "eA==")))
                .is_none(),
            "not a copy"
        );
        let src = copies.apply(&a, &Event::Apply(secret("a", "k", Some("orders"), "eA==")));
        assert_eq!(src.map(|s| s.namespace), Some("orders".into()));
        copies.apply(&b, &Event::Apply(secret("b", "k", Some("orders"), "eQ==")));
        let source = Source {
            namespace: "orders".into(),
            rotation: "api".into(),
        };
        assert_eq!(copies.of(&source).len(), 2);
        assert_ne!(
            copies.get("a", "k").unwrap().digest,
            copies.get("b", "k").unwrap().digest
        );
        copies.apply(&a, &Event::Init);
        copies.apply(&a, &Event::InitDone);
        assert_eq!(
            copies.of(&source),
            [("b".to_string(), "k".to_string())],
            "b's copy stays"
        );
        assert!(!copies.is_ready(), "b has not listed yet");
        copies.apply(&b, &Event::Init);
        copies.apply(
            &b,
            &Event::InitApply(secret("b", "k", Some("orders"), "eQ==")),
        );
        copies.apply(&b, &Event::InitDone);
        assert!(copies.is_ready());
        assert_eq!(
            copies.sources_in("b", &["k".into()]),
            std::slice::from_ref(&source)
        );
        copies.forget("b", "k");
        assert!(copies.is_empty());
    }
}
