//! The presenter side of the client library: the current key, always the
//! one kubelet last delivered, as a redacting [`SecretKey`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::keys::SecretKey;
use crate::store::{KeyStore, Snapshot};
use crate::volume::VolumeError;
use crate::wire::Version;

/// Hands out the current key of a hot-reloaded presenter directory.
#[derive(Debug)]
pub struct Presenter {
    store: Arc<KeyStore>,
}

impl Presenter {
    /// Opens a presenter (or combined) projected-Secret directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Presenter, VolumeError> {
        Ok(Presenter::from_store(Arc::new(KeyStore::open(dir)?)))
    }

    pub fn from_store(store: Arc<KeyStore>) -> Presenter {
        Presenter { store }
    }

    /// The key to send now, with its version.
    pub fn current(&self) -> Option<(Version, SecretKey)> {
        let snap = self.store.snapshot();
        snap.current.as_ref().map(|(v, k)| (*v, k.clone()))
    }

    /// The key to send now.
    pub fn key(&self) -> Option<SecretKey> {
        self.current().map(|(_, k)| k)
    }

    /// Reloads when the volume changed.
    pub fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        self.store.refresh()
    }

    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }
}
