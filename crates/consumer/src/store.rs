//! The contents of one projected-Secret directory as typed values, and a
//! store that hot-reloads them when kubelet swaps the volume.
//!
//! Verifier digests are decoded to bytes and plain verifier keys are hashed
//! at load time, so verification compares fixed-size digests only. Nothing
//! here prints a key or a digest: `Debug` shows versions, revisions and user
//! names (which are not secret).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::hook::{MAX_USERNAME, username_ok};
use crate::keys::SecretKey;
use crate::volume::{self, Files, Generation, VolumeError};
use crate::wire::{self as w, Version};

/// What every projected Secret says about itself: enough to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The ApiKeyRotation's name.
    pub rotation: String,
    /// `verifier`, `presenter`, or both.
    pub roles: Vec<String>,
    /// The projected Secret's revision (monotonic).
    pub revision: u64,
}

impl Meta {
    fn read(files: &Files) -> Result<Meta, VolumeError> {
        let rotation = files.required(w::ROTATION_FILE)?;
        let roles: Vec<String> = w::roles(&files.required(w::ROLE_FILE)?)
            .map(String::from)
            .collect();
        if rotation.is_empty() || roles.is_empty() {
            return Err(files.invalid(w::ROTATION_FILE, "rotation or role is empty"));
        }
        // docs/wire.md `other-role`: printable ASCII, no space, no comma.
        let word = |r: &String| r.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',');
        if !roles.iter().all(word) {
            return Err(files.invalid(w::ROLE_FILE, "a role is not a word of printable ASCII"));
        }
        let revision = number(files, w::REVISION_FILE)?;
        Ok(Meta {
            rotation,
            roles,
            revision,
        })
    }

    /// Reads only the metadata files (the reporter never touches a key).
    pub fn load(dir: &Path) -> Result<(Meta, Option<Generation>), VolumeError> {
        volume::read_consistent(dir, Meta::read)
    }

    /// Whether this directory serves `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// SHA-256 of an accepted key: what a presented key is compared with.
pub(crate) type KeyDigest = Zeroizing<[u8; 32]>;

/// One loaded generation of a projected-Secret directory.
pub struct Snapshot {
    pub meta: Meta,
    /// Versions the verifier Secret accepts (empty for a presenter Secret).
    pub accepted: BTreeSet<Version>,
    pub(crate) digests: BTreeMap<Version, KeyDigest>,
    /// The current key, its version and user name (presenter Secrets only).
    pub current: Option<Presented>,
    pub generation: Option<Generation>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("meta", &self.meta)
            .field("accepted", &self.accepted)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Loads `dir` consistently (never half old, half new).
    pub fn load(dir: &Path) -> Result<Snapshot, VolumeError> {
        let (mut snap, generation) = volume::read_consistent(dir, Snapshot::read)?;
        snap.generation = generation;
        Ok(snap)
    }

    fn read(files: &Files) -> Result<Snapshot, VolumeError> {
        let meta = Meta::read(files)?;
        let mut accepted = BTreeSet::new();
        let mut digests = BTreeMap::new();
        if meta.has_role(w::ROLE_VERIFIER) {
            accepted = parse_versions(files)?;
            for v in &accepted {
                digests.insert(*v, accepted_digest(files, *v)?);
            }
        }
        let current = match meta.has_role(w::ROLE_PRESENTER) {
            true => Some(Presented::read(files)?),
            false => None,
        };
        Ok(Snapshot {
            meta,
            accepted,
            digests,
            current,
            generation: None,
        })
    }
}

/// What a presenter Secret holds: the key to send, its version, and the
/// user name the key is the password of when the version has one. All three
/// come from one generation, so a key never goes out with another
/// version's user name.
#[derive(Clone)]
pub struct Presented {
    version: Version,
    key: SecretKey,
    username: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("version", &self.version)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Presented {
    /// The current version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The key to send.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The user name to send with the key, when its version has one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// `version` and `key` are required; `username` is optional, but when
    /// present it must be a user name (an empty file is not "none").
    fn read(files: &Files) -> Result<Presented, VolumeError> {
        let version = number(files, w::VERSION)?;
        let key = key_file(files, w::KEY)?.ok_or_else(|| files.missing(w::KEY))?;
        let username = files.text(w::USERNAME_FILE)?;
        if username.as_deref().is_some_and(|u| !username_ok(u)) {
            let reason = format!("is not 1 to {MAX_USERNAME} bytes of printable ASCII");
            return Err(files.invalid(w::USERNAME_FILE, &reason));
        }
        Ok(Presented {
            version,
            key,
            username,
        })
    }
}

/// A required file holding one number ([`w::parse_number`]'s grammar).
fn number(files: &Files, name: &str) -> Result<u64, VolumeError> {
    w::parse_number(&files.required(name)?).ok_or_else(|| files.invalid(name, "is not a number"))
}

/// A key file: printable ASCII, 16 to 1024 bytes ([`SecretKey::adopt`]),
/// one trailing newline tolerated (hand-made files; keyrotor never writes one).
fn key_file(files: &Files, name: &str) -> Result<Option<SecretKey>, VolumeError> {
    let Some(mut bytes) = files.read(name, SecretKey::MAX_LEN + 1)? else {
        return Ok(None);
    };
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    SecretKey::adopt(bytes)
        .map(Some)
        .map_err(|e| files.invalid(name, &e.to_string()))
}

fn parse_versions(files: &Files) -> Result<BTreeSet<Version>, VolumeError> {
    files
        .required(w::ACCEPTED_FILE)?
        .split(',')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
        .map(|p| w::parse_number(p).ok_or(()))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            files.invalid(
                w::ACCEPTED_FILE,
                "is not a comma-separated list of versions",
            )
        })
}

/// Version `v`'s digest: from `v<N>.sha256` when present, else the SHA-256
/// of the plain key in `v<N>.key`.
fn accepted_digest(files: &Files, v: Version) -> Result<KeyDigest, VolumeError> {
    let name = w::digest_file(v);
    if let Some(hex) = files.text(&name)? {
        return decode_hex(&hex).ok_or_else(|| files.invalid(&name, "is not 64 hex digits"));
    }
    let name = w::plain_file(v);
    match key_file(files, &name)? {
        Some(key) => Ok(Zeroizing::new(
            Sha256::digest(key.expose().as_bytes()).into(),
        )),
        None => Err(files.missing(&name)),
    }
}

fn decode_hex(text: &str) -> Option<KeyDigest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A directory's latest good snapshot. A failed reload keeps the previous
/// snapshot: an app keeps serving with the keys it has rather than failing.
pub struct KeyStore {
    dir: PathBuf,
    current: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl KeyStore {
    /// Loads `dir`; fails when its files are missing or malformed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<KeyStore, VolumeError> {
        let dir = dir.into();
        let snap = Snapshot::load(&dir)?;
        Ok(KeyStore {
            dir,
            current: RwLock::new(Arc::new(snap)),
        })
    }

    /// The directory this store reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The latest loaded snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads when the volume changed (one `readlink` when it did not).
    /// Returns the new snapshot when there is one.
    pub fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        let now = volume::generation(&self.dir)?;
        let old = self.snapshot();
        if now.is_some() && now == old.generation {
            return Ok(None);
        }
        let snap = Snapshot::load(&self.dir)?;
        // Without `..data` (a plain directory) the revision tells a change.
        if snap.generation.is_none() && snap.meta == old.meta && snap.accepted == old.accepted {
            return Ok(None);
        }
        let snap = Arc::new(snap);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snap.clone();
        Ok(Some(snap))
    }
}
