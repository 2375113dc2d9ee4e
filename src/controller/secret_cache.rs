//! The rotations' Secrets as the Secret watch delivers them, and what this
//! process last knew of each: the answers to its own writes and its last
//! consistent LIST. Observe reads a rotation's Secrets from here only when
//! the cache holds exactly that knowledge, so it is never behind what
//! keyrotor itself wrote or read (read-your-writes, never back in time);
//! otherwise it LISTs from the API as before and the knowledge starts again
//! from that list.
//!
//! What the cache may miss is a change by someone else that the watch has
//! not delivered yet. A consistent LIST has the same gap a moment later, and
//! nothing depends on closing it: a projection is written with its
//! resourceVersion as precondition (409 on a missed change), a version
//! Secret is created once or kept (409), deletes are idempotent, and the
//! change's own watch event triggers a reconcile that sees it. Any failed
//! reconcile drops the rotation's knowledge, so the retry reads from the API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::wire as k;

/// (namespace, rotation).
type Rotation = (String, String);
/// Secret name → the Secret, for one rotation.
type Held = BTreeMap<String, Arc<Secret>>;

#[derive(Default)]
pub struct SecretCache {
    state: Mutex<State>,
    /// Off: every observe LISTs (`keyrotor run --list-secrets`).
    disabled: bool,
}

#[derive(Default)]
struct State {
    /// The watch has delivered its first full list.
    ready: bool,
    secrets: Secrets,
    /// A relist in progress, swapped in whole at its end.
    relist: Option<Secrets>,
    /// Secret name → the resourceVersion keyrotor last wrote or read
    /// (`None`: it deleted the Secret or saw it gone).
    known: HashMap<Rotation, BTreeMap<String, Option<String>>>,
}

/// Secrets by rotation label, and each Secret's rotation (for a relabel or
/// a delete).
#[derive(Default)]
struct Secrets {
    by_rotation: HashMap<Rotation, Held>,
    rotation: HashMap<(String, String), String>,
}

impl Secrets {
    fn insert(&mut self, s: &Secret) {
        self.remove(s);
        let id = (s.namespace().unwrap_or_default(), s.name_any());
        if let Some(rotation) = s.labels().get(k::ROTATION_LABEL) {
            let mut slim = s.clone();
            slim.metadata.managed_fields = None; // nothing reads them
            self.by_rotation
                .entry((id.0.clone(), rotation.clone()))
                .or_default()
                .insert(id.1.clone(), Arc::new(slim));
            self.rotation.insert(id, rotation.clone());
        }
    }

    fn remove(&mut self, s: &Secret) {
        let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
        let Some(rotation) = self.rotation.remove(&(ns.clone(), name.clone())) else {
            return;
        };
        let id = (ns, rotation);
        if let Some(held) = self.by_rotation.get_mut(&id) {
            held.remove(&name);
            if held.is_empty() {
                self.by_rotation.remove(&id);
            }
        }
    }
}

/// Where one observe got the rotation's Secrets (for the phases line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Api => "api",
        }
    }
}

impl SecretCache {
    pub fn new(enabled: bool) -> SecretCache {
        SecretCache {
            disabled: !enabled,
            ..Default::default()
        }
    }

    /// Applies one event of the Secret watch, in order.
    pub fn apply(&self, event: &Event<Secret>) {
        if self.disabled {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(s) => st.secrets.insert(s),
            Event::Delete(s) => st.secrets.remove(s),
            Event::Init => st.relist = Some(Secrets::default()),
            Event::InitApply(s) => match st.relist.as_mut() {
                Some(relist) => relist.insert(s),
                None => st.secrets.insert(s),
            },
            Event::InitDone => {
                if let Some(relist) = st.relist.take() {
                    st.secrets = relist;
                }
                st.ready = true;
            }
        }
    }

    /// The rotation's Secrets, if the cache holds every one of them exactly
    /// as keyrotor last knew it; `None`: read them from the API.
    pub fn read(&self, ns: &str, rotation: &str) -> Option<Vec<Secret>> {
        if self.disabled {
            return None;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = (ns.to_string(), rotation.to_string());
        if !st.ready || st.relist.is_some() {
            return None;
        }
        let empty = Held::new();
        let State { secrets, known, .. } = &mut *st;
        let held = secrets.by_rotation.get(&id).unwrap_or(&empty);
        let known = known.get_mut(&id)?;
        let version = |name: &str| {
            held.get(name)
                .map(|s| s.metadata.resource_version.as_deref())
        };
        let current = known.iter().all(|(name, rv)| match rv {
            Some(rv) => version(name) == Some(Some(rv.as_str())),
            None => version(name).is_none(),
        });
        if !current {
            return None;
        }
        // A deletion the cache has shown needs no more remembering.
        known.retain(|_, rv| rv.is_some());
        Some(held.values().map(|s| (**s).clone()).collect())
    }

    /// A consistent LIST of the rotation's Secrets: the knowledge starts
    /// again from it. A Secret known before and missing now is gone.
    pub fn listed(&self, ns: &str, rotation: &str, secrets: &[Secret]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let known = st
            .known
            .entry((ns.to_string(), rotation.to_string()))
            .or_default();
        for rv in known.values_mut() {
            *rv = None;
        }
        for s in secrets {
            known.insert(s.name_any(), s.metadata.resource_version.clone());
        }
    }

    /// The API's answer to a write (or a read by name) of one of the
    /// rotation's Secrets. Ignored until a LIST has started the knowledge.
    pub fn wrote(&self, ns: &str, rotation: &str, secret: &Secret) {
        self.note(
            ns,
            rotation,
            secret.name_any(),
            secret.metadata.resource_version.clone(),
        );
    }

    /// The Secret is gone (deleted, or a 404).
    pub fn deleted(&self, ns: &str, rotation: &str, name: &str) {
        self.note(ns, rotation, name.to_string(), None);
    }

    fn note(&self, ns: &str, rotation: &str, name: String, rv: Option<String>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = st.known.get_mut(&(ns.to_string(), rotation.to_string())) {
            known.insert(name, rv);
        }
    }

    /// Drops what keyrotor knew of the rotation's Secrets (a failed
    /// reconcile, a deleted rotation): the next observe LISTs them.
    pub fn forget(&self, ns: &str, rotation: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.known.remove(&(ns.to_string(), rotation.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(name: &str, rv: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: Some([(k::ROTATION_LABEL.to_string(), "api".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn synced(secrets: &[Secret]) -> SecretCache {
        let c = SecretCache::default();
        c.apply(&Event::Init);
        for s in secrets {
            c.apply(&Event::InitApply(s.clone()));
        }
        c.apply(&Event::InitDone);
        c
    }

    fn names(c: &SecretCache) -> Option<Vec<String>> {
        c.read("ns", "api")
            .map(|v| v.iter().map(|s| s.name_any()).collect())
    }

    #[test]
    fn nothing_is_read_from_the_cache_before_a_consistent_list() {
        let c = synced(&[secret("api-v1", "5")]);
        assert_eq!(names(&c), None);
        c.listed("ns", "api", &[secret("api-v1", "5")]);
        assert_eq!(names(&c), Some(vec!["api-v1".into()]));
    }

    #[test]
    fn the_cache_serves_only_once_it_shows_keyrotors_own_writes() {
        let c = synced(&[secret("api-v1", "5")]);
        c.listed("ns", "api", &[secret("api-v1", "5")]);
        c.wrote("ns", "api", &secret("api-v2", "9"));
        assert_eq!(names(&c), None, "the create is not in the cache yet");
        c.apply(&Event::Apply(secret("api-v2", "9")));
        assert_eq!(names(&c), Some(vec!["api-v1".into(), "api-v2".into()]));
        c.deleted("ns", "api", "api-v1");
        assert_eq!(names(&c), None, "the delete is not in the cache yet");
        c.apply(&Event::Delete(secret("api-v1", "5")));
        assert_eq!(names(&c), Some(vec!["api-v2".into()]));
    }

    #[test]
    fn a_list_that_lacks_a_secret_the_cache_still_holds_keeps_it_gone() {
        let c = synced(&[secret("api-v1", "5"), secret("api-v2", "6")]);
        c.listed("ns", "api", &[secret("api-v1", "5"), secret("api-v2", "6")]);
        // Deleted by someone else; the consistent list sees it, the watch not yet.
        c.listed("ns", "api", &[secret("api-v2", "6")]);
        assert_eq!(names(&c), None);
        c.apply(&Event::Delete(secret("api-v1", "5")));
        assert_eq!(names(&c), Some(vec!["api-v2".into()]));
    }

    #[test]
    fn a_change_by_someone_else_and_a_failure_send_observe_to_the_api() {
        let c = synced(&[secret("api-v1", "5")]);
        c.listed("ns", "api", &[secret("api-v1", "5")]);
        c.apply(&Event::Apply(secret("api-v1", "7")));
        assert_eq!(names(&c), None, "not what keyrotor knew");
        c.listed("ns", "api", &[secret("api-v1", "7")]);
        assert!(names(&c).is_some());
        c.forget("ns", "api");
        assert_eq!(names(&c), None);
    }

    #[test]
    fn a_relist_is_not_read_until_it_is_complete() {
        let c = synced(&[secret("api-v1", "5")]);
        c.listed("ns", "api", &[secret("api-v1", "5")]);
        c.apply(&Event::Init);
        assert_eq!(names(&c), None);
        c.apply(&Event::InitApply(secret("api-v1", "5")));
        c.apply(&Event::InitDone);
        assert_eq!(names(&c), Some(vec!["api-v1".into()]));
    }
}
