//! What this process last knew of each rotation's Secrets: the API's answers
//! to its own writes and its last consistent LIST. With it, observe can take
//! a LIST served from the API server's watch cache as it stands (no wait for
//! the cache to catch up with etcd, which is most of a consistent LIST: 23.5
//! of 26 ms on a quiet server, docs/performance.md) whenever that list holds
//! every one of the rotation's Secrets exactly as keyrotor last knew it. Such
//! a list is never behind keyrotor's own writes and never shows a Secret
//! older than keyrotor last saw it; any other list is set aside for a consistent one, which the knowledge then
//! starts again from.
//!
//! What an accepted list may miss is a change by someone else that the watch
//! cache has not caught up with yet. A consistent LIST misses the same change
//! made a moment after it, and nothing depends on closing that gap: a
//! projection is written with its resourceVersion as precondition (409 on a
//! missed change), a version Secret is created once or kept (409), deletes
//! are idempotent, and the change's own watch event triggers a reconcile that
//! sees it. A failed reconcile drops the rotation's knowledge, so the retry
//! reads consistently.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

/// (namespace, rotation).
type Rotation = (String, String);
/// Secret name and the resourceVersion keyrotor last wrote or read (`None`:
/// it deleted the Secret or saw it gone). A handful per rotation.
type Known = Vec<(Box<str>, Option<Box<str>>)>;

#[derive(Default)]
pub struct KnownSecrets {
    known: Mutex<HashMap<Rotation, Known>>,
    /// Every observe reads consistently (`keyrotor run --list-secrets`).
    disabled: bool,
}

/// How one observe read the rotation's Secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// From the API server's watch cache, as it stood.
    Cached,
    /// Consistent: the API server waited until its cache caught up.
    Consistent,
}

impl Read {
    pub fn as_str(self) -> &'static str {
        match self {
            Read::Cached => "cached",
            Read::Consistent => "consistent",
        }
    }
}

fn set(known: &mut Known, name: &str, rv: Option<&str>) {
    let rv = rv.map(Box::from);
    match known.iter_mut().find(|(n, _)| &**n == name) {
        Some(entry) => entry.1 = rv,
        None => known.push((name.into(), rv)),
    }
}

impl KnownSecrets {
    pub fn new(enabled: bool) -> KnownSecrets {
        KnownSecrets {
            disabled: !enabled,
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Rotation, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a list served from the cache could be accepted at all: there
    /// is knowledge to check it against (none before the first consistent
    /// LIST, after a failure, or with `--list-secrets`).
    pub fn knows(&self, ns: &str, rotation: &str) -> bool {
        !self.disabled && self.lock().contains_key(&(ns.into(), rotation.into()))
    }

    /// Whether `listed` (served from the watch cache) holds every one of the
    /// rotation's Secrets exactly as keyrotor last knew it.
    pub fn current(&self, ns: &str, rotation: &str, listed: &[Secret]) -> bool {
        let mut all = self.lock();
        let Some(known) = all.get_mut(&(ns.into(), rotation.into())) else {
            return false;
        };
        let version = |name: &str| {
            listed
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
                .map(|s| s.metadata.resource_version.as_deref())
        };
        let current = known.iter().all(|(name, rv)| match rv {
            Some(rv) => version(name) == Some(Some(&**rv)),
            None => version(name).is_none(),
        });
        if current {
            // A deletion the cache has shown needs no more remembering.
            known.retain(|(_, rv)| rv.is_some());
        }
        current
    }

    /// A consistent LIST of the rotation's Secrets: the knowledge starts
    /// again from it. A Secret known before and missing now is gone.
    pub fn listed(&self, ns: &str, rotation: &str, secrets: &[Secret]) {
        let mut all = self.lock();
        let known = all.entry((ns.into(), rotation.into())).or_default();
        for entry in known.iter_mut() {
            entry.1 = None;
        }
        for s in secrets {
            set(known, &s.name_any(), s.metadata.resource_version.as_deref());
        }
    }

    /// The API's answer to a write (or a read by name) of one of the
    /// rotation's Secrets. Ignored until a consistent LIST started the
    /// knowledge.
    pub fn wrote(&self, ns: &str, rotation: &str, secret: &Secret) {
        let rv = secret.metadata.resource_version.as_deref();
        if let Some(known) = self.lock().get_mut(&(ns.into(), rotation.into())) {
            set(known, &secret.name_any(), rv);
        }
    }

    /// The Secret is gone (deleted, or a 404).
    pub fn deleted(&self, ns: &str, rotation: &str, name: &str) {
        if let Some(known) = self.lock().get_mut(&(ns.into(), rotation.into())) {
            set(known, name, None);
        }
    }

    /// Drops what keyrotor knew of the rotation's Secrets (a failed
    /// reconcile, a deleted rotation): the next observe reads consistently.
    pub fn forget(&self, ns: &str, rotation: &str) {
        self.lock().remove(&(ns.into(), rotation.into()));
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
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn known(secrets: &[Secret]) -> KnownSecrets {
        let k = KnownSecrets::new(true);
        k.listed("ns", "api", secrets);
        k
    }

    #[test]
    fn nothing_is_accepted_before_a_consistent_list_or_when_disabled() {
        let k = KnownSecrets::new(true);
        assert!(!k.knows("ns", "api"));
        assert!(!k.current("ns", "api", &[]));
        k.wrote("ns", "api", &secret("api-v1", "5"));
        assert!(!k.knows("ns", "api"), "a write alone starts no knowledge");
        let off = KnownSecrets::new(false);
        off.listed("ns", "api", &[]);
        assert!(!off.knows("ns", "api"));
    }

    #[test]
    fn a_list_is_accepted_only_once_it_shows_keyrotors_own_writes() {
        let k = known(&[secret("api-v1", "5")]);
        assert!(k.current("ns", "api", &[secret("api-v1", "5")]));
        k.wrote("ns", "api", &secret("api-v2", "9"));
        assert!(
            !k.current("ns", "api", &[secret("api-v1", "5")]),
            "the create is missing"
        );
        let both = [secret("api-v1", "5"), secret("api-v2", "9")];
        assert!(k.current("ns", "api", &both));
        k.deleted("ns", "api", "api-v1");
        assert!(!k.current("ns", "api", &both), "the delete is missing");
        assert!(k.current("ns", "api", &[secret("api-v2", "9")]));
    }

    #[test]
    fn a_secret_gone_from_a_consistent_list_must_be_gone_from_the_next() {
        let k = known(&[secret("api-v1", "5"), secret("api-v2", "6")]);
        // Deleted by someone else: the consistent list shows it, the cache may not yet.
        k.listed("ns", "api", &[secret("api-v2", "6")]);
        assert!(!k.current("ns", "api", &[secret("api-v1", "5"), secret("api-v2", "6")]));
        assert!(k.current("ns", "api", &[secret("api-v2", "6")]));
    }

    #[test]
    fn a_change_by_someone_else_or_a_failure_means_a_consistent_read() {
        let k = known(&[secret("api-v1", "5")]);
        assert!(
            !k.current("ns", "api", &[secret("api-v1", "7")]),
            "not what keyrotor knew"
        );
        k.listed("ns", "api", &[secret("api-v1", "7")]);
        assert!(k.current("ns", "api", &[secret("api-v1", "7")]));
        k.forget("ns", "api");
        assert!(!k.knows("ns", "api"));
    }
}
