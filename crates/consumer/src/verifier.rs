//! The verifier side of the client library: is a presented key one of the
//! accepted versions, and which?
//!
//! The presented key is hashed once and compared with every accepted digest
//! in constant time (`subtle`), without stopping at a match, so timing tells
//! neither which bytes matched nor which version. Matches are recorded in
//! [`Usage`] for Traffic mode.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::store::{KeyStore, Snapshot};
use crate::usage::Usage;
use crate::volume::VolumeError;
use crate::wire::Version;

/// Verifies presented keys against a hot-reloaded verifier directory.
#[derive(Debug)]
pub struct Verifier {
    store: Arc<KeyStore>,
    usage: Arc<Usage>,
}

impl Verifier {
    /// Opens a verifier (or combined) projected-Secret directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Verifier, VolumeError> {
        Ok(Verifier::from_store(Arc::new(KeyStore::open(dir)?)))
    }

    pub fn from_store(store: Arc<KeyStore>) -> Verifier {
        Verifier {
            store,
            usage: Arc::new(Usage::default()),
        }
    }

    /// The version `presented` is, if it is accepted now; records the use.
    pub fn verify(&self, presented: &[u8]) -> Option<Version> {
        self.verify_at(presented, Timestamp::now())
    }

    /// [`Verifier::verify`] with the clock as a parameter (tests, replays).
    pub fn verify_at(&self, presented: &[u8], now: Timestamp) -> Option<Version> {
        let found = matching_version(&self.store.snapshot(), presented);
        if let Some(v) = found {
            self.usage.record(v, now);
        }
        found
    }

    /// Reloads when the volume changed; forgets usage of retired versions.
    pub fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        let new = self.store.refresh()?;
        if let Some(snap) = &new {
            self.usage.retain(&snap.accepted);
        }
        Ok(new)
    }

    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }
}

/// Constant-time search of `presented` among the snapshot's accepted digests.
fn matching_version(snap: &Snapshot, presented: &[u8]) -> Option<Version> {
    let digest: [u8; 32] = Sha256::digest(presented).into();
    // Versions start at 1, so 0 means "none"; selection is branch-free.
    let mut found: u64 = 0;
    for (v, accepted) in &snap.digests {
        let eq = digest[..].ct_eq(&accepted[..]);
        found = u64::conditional_select(&found, v, eq);
    }
    (found != 0).then_some(found)
}
