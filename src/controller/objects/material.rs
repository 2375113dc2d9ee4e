//! What one reconcile read that only the I/O steps may touch: key material
//! and the raw projected Secrets. The planner sees none of it (its
//! `Observed` holds versions, revisions and fingerprints only).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::keys::SecretKey;
use crate::rotation::{Version, VersionObs};

#[derive(Default)]
pub struct Material {
    /// Each version's key, from its version Secret (or a projection, when
    /// its Secret is lost and restorable: `repair::recoverable`).
    pub keys: BTreeMap<Version, SecretKey>,
    pub verifier_secret: Option<Secret>,
    pub presenter_secret: Option<Secret>,
    /// The adoption source's key, before the first version exists.
    pub adopted_key: Option<SecretKey>,
    /// The `keyId` an issuer hook gave each version it minted, sent back
    /// with `retire`.
    pub key_ids: BTreeMap<Version, String>,
    /// The user name each version's Secret records (`spec.usernames`):
    /// presenters get the current one's beside its key.
    pub usernames: BTreeMap<Version, String>,
}

impl Material {
    /// Keeps what version `v`'s Secret holds for the writes: its key, if it
    /// has one, and its user name.
    pub fn hold(&mut self, v: Version, seen: &VersionObs, key: Option<SecretKey>) {
        if let Some(key) = key {
            self.keys.insert(v, key);
        }
        if let Some(name) = &seen.username {
            self.usernames.insert(v, name.clone());
        }
    }
}
