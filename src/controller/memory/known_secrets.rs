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

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

/// What keyrotor knows of one rotation's Secrets: each Secret's name and the
/// resourceVersion keyrotor last wrote or read (`None`: it deleted the
/// Secret or saw it gone). A handful per rotation.
#[derive(Clone, Debug, Default)]
pub struct KnownSecrets(Vec<(Box<str>, Option<Box<str>>)>);

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

impl KnownSecrets {
    fn set(&mut self, name: &str, rv: Option<&str>) {
        let rv = rv.map(Box::from);
        match self.0.iter_mut().find(|(n, _)| &**n == name) {
            Some(entry) => entry.1 = rv,
            None => self.0.push((name.into(), rv)),
        }
    }

    /// Whether `listed` (served from the watch cache) holds every one of the
    /// rotation's Secrets exactly as keyrotor last knew it.
    pub fn current(&mut self, listed: &[Secret]) -> bool {
        let version = |name: &str| {
            listed
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
                .map(|s| s.metadata.resource_version.as_deref())
        };
        let current = self.0.iter().all(|(name, rv)| match rv {
            Some(rv) => version(name) == Some(Some(&**rv)),
            None => version(name).is_none(),
        });
        if current {
            // A deletion the cache has shown needs no more remembering.
            self.0.retain(|(_, rv)| rv.is_some());
        }
        current
    }

    /// A consistent LIST of the rotation's Secrets: the knowledge starts
    /// again from it. A Secret known before and missing now is gone.
    pub fn listed(&mut self, secrets: &[Secret]) {
        for entry in self.0.iter_mut() {
            entry.1 = None;
        }
        for s in secrets {
            self.set(&s.name_any(), s.metadata.resource_version.as_deref());
        }
    }

    /// The API's answer to a write (or a read by name) of one of the
    /// rotation's Secrets.
    pub fn wrote(&mut self, secret: &Secret) {
        self.set(
            &secret.name_any(),
            secret.metadata.resource_version.as_deref(),
        );
    }

    /// The Secret is gone (deleted, or a 404).
    pub fn deleted(&mut self, name: &str) {
        self.set(name, None);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    /// A Secret as a list or a write answer shows it: a name and a resourceVersion.
    pub(in crate::controller::memory) fn secret(name: &str, rv: &str) -> Secret {
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
        let mut k = KnownSecrets::default();
        k.listed(secrets);
        k
    }

    #[test]
    fn a_list_is_accepted_only_once_it_shows_keyrotors_own_writes() {
        let mut k = known(&[secret("api-v1", "5")]);
        assert!(k.current(&[secret("api-v1", "5")]));
        k.wrote(&secret("api-v2", "9"));
        assert!(
            !k.current(&[secret("api-v1", "5")]),
            "the create is missing"
        );
        let both = [secret("api-v1", "5"), secret("api-v2", "9")];
        assert!(k.current(&both));
        k.deleted("api-v1");
        assert!(!k.current(&both), "the delete is missing");
        assert!(k.current(&[secret("api-v2", "9")]));
    }

    #[test]
    fn a_secret_gone_from_a_consistent_list_must_be_gone_from_the_next() {
        let mut k = known(&[secret("api-v1", "5"), secret("api-v2", "6")]);
        // Deleted by someone else: the consistent list shows it, the cache may not yet.
        k.listed(&[secret("api-v2", "6")]);
        assert!(!k.current(&[secret("api-v1", "5"), secret("api-v2", "6")]));
        assert!(k.current(&[secret("api-v2", "6")]));
    }

    #[test]
    fn a_change_by_someone_else_means_a_consistent_read() {
        let mut k = known(&[secret("api-v1", "5")]);
        assert!(
            !k.current(&[secret("api-v1", "7")]),
            "not what keyrotor knew"
        );
        k.listed(&[secret("api-v1", "7")]);
        assert!(k.current(&[secret("api-v1", "7")]));
    }
}
