//! The verifier side of the client library: is a presented key one of the
//! accepted versions, and which?
//!
//! The presented key is hashed once and compared with every accepted digest
//! in constant time (`subtle`), without stopping at a match, so timing tells
//! neither which bytes matched nor which version. Matches are recorded in
//! [`Usage`] for Traffic mode.
//!
//! A verifier also remembers the digests of the last few versions it stopped
//! accepting, so that [`Verifier::check`] tells a key that was retired (a
//! client missed the rotation) from one that never was valid (a typo, an
//! attack). Retired digests are never accepted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::store::{KeyDigest, KeyStore, Snapshot};
use crate::usage::Usage;
use crate::volume::VolumeError;
use crate::wire::Version;

/// How many retired versions a verifier remembers (a rotation retires one
/// version per cycle, so this covers several missed cycles).
pub const RETIRED_MEMORY: usize = 8;

/// Verifies presented keys against a hot-reloaded verifier directory.
pub struct Verifier {
    store: Arc<KeyStore>,
    usage: Arc<Usage>,
    /// Digests of versions this process saw accepted and then retired.
    retired: Mutex<BTreeMap<Version, KeyDigest>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let retired: Vec<Version> = self.lock_retired().keys().copied().collect();
        f.debug_struct("Verifier")
            .field("store", &self.store)
            .field("retired", &retired)
            .finish_non_exhaustive()
    }
}

/// What a presented key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// An accepted version: let the request through.
    Accepted(Version),
    /// A version this verifier accepted once and no longer does.
    Retired(Version),
    /// Not a key of any version this verifier knows.
    Unknown,
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
            retired: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, BTreeMap<Version, KeyDigest>> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `presented` is accepted, retired or unknown, at `now`;
    /// records accepted use like [`Verifier::verify_at`].
    pub fn check_at(&self, presented: &[u8], now: Timestamp) -> Check {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        if let Some(v) = find(self.store.snapshot().digests.iter(), &digest) {
            self.usage.record(v, now);
            return Check::Accepted(v);
        }
        match find(self.lock_retired().iter(), &digest) {
            Some(v) => Check::Retired(v),
            None => Check::Unknown,
        }
    }

    /// The version `presented` is, if it is accepted now; records the use.
    pub fn verify(&self, presented: &[u8]) -> Option<Version> {
        self.verify_at(presented, Timestamp::now())
    }

    /// [`Verifier::verify`] with the clock as a parameter (tests, replays).
    pub fn verify_at(&self, presented: &[u8], now: Timestamp) -> Option<Version> {
        match self.check_at(presented, now) {
            Check::Accepted(v) => Some(v),
            Check::Retired(_) | Check::Unknown => None,
        }
    }

    /// Reloads when the volume changed; forgets usage of retired versions
    /// and remembers their digests.
    pub fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        let old = self.store.snapshot();
        let new = self.store.refresh()?;
        if let Some(snap) = &new {
            self.usage.retain(&snap.accepted);
            let mut retired = self.lock_retired();
            for (v, digest) in &old.digests {
                if !snap.digests.contains_key(v) {
                    retired.insert(*v, digest.clone());
                }
            }
            // A version accepted again (a rollback) is no longer retired.
            retired.retain(|v, _| !snap.digests.contains_key(v));
            while retired.len() > RETIRED_MEMORY {
                retired.pop_first();
            }
        }
        Ok(new)
    }

    /// The versions this process saw accepted and then retired (at most
    /// [`RETIRED_MEMORY`]).
    pub fn retired_versions(&self) -> Vec<Version> {
        self.lock_retired().keys().copied().collect()
    }

    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }
}

/// Constant-time search of `digest` among `digests`: every one is compared.
fn find<'a>(
    digests: impl Iterator<Item = (&'a Version, &'a KeyDigest)>,
    digest: &[u8; 32],
) -> Option<Version> {
    // Versions start at 1, so 0 means "none"; selection is branch-free.
    let mut found: u64 = 0;
    for (v, known) in digests {
        let eq = digest[..].ct_eq(&known[..]);
        found = u64::conditional_select(&found, v, eq);
    }
    (found != 0).then_some(found)
}
