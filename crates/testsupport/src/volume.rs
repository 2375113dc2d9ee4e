//! A simulated kubelet Secret volume: each publish writes a new timestamped
//! directory, swaps `..data` atomically (rename of a fresh symlink over it,
//! as kubelet's AtomicWriter does), links the visible files through
//! `..data`, then removes the old directory.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use keyrotor::keys::{Alphabet, KeySpec, SecretKey};
use keyrotor::wire as k;

pub struct Volume {
    pub dir: PathBuf,
    generation: u32,
    current: Option<PathBuf>,
}

impl Volume {
    /// An empty mount point in a fresh temporary directory.
    pub fn new(name: &str) -> Volume {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keyrotor-volume-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Volume {
            dir,
            generation: 0,
            current: None,
        }
    }

    /// Replaces the whole contents atomically.
    pub fn publish(&mut self, files: &BTreeMap<String, Vec<u8>>) {
        self.generation += 1;
        let ts = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation % 60,
            self.generation
        );
        let target = self.dir.join(&ts);
        std::fs::create_dir(&target).unwrap();
        for (name, bytes) in files {
            std::fs::write(target.join(name), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for name in files.keys() {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        // Files that left the Secret lose their visible link.
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.starts_with("..") && !files.contains_key(&name) {
                std::fs::remove_file(self.dir.join(&name)).unwrap();
            }
        }
        if let Some(old) = self.current.replace(target) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn key() -> SecretKey {
    SecretKey::generate(&KeySpec {
        alphabet: Alphabet::Base62,
        length: 32,
        prefix: "test_".into(),
        checksum: false,
    })
    .unwrap()
}

fn base(rotation: &str, role: &str, revision: u64) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (k::ROTATION_FILE.into(), rotation.as_bytes().to_vec()),
        (k::ROLE_FILE.into(), role.as_bytes().to_vec()),
        (k::REVISION_FILE.into(), revision.to_string().into_bytes()),
    ])
}

/// A verifier Secret's files (digests) accepting `keys`.
pub fn verifier(
    rotation: &str,
    revision: u64,
    keys: &[(u64, &SecretKey)],
) -> BTreeMap<String, Vec<u8>> {
    let mut files = base(rotation, k::ROLE_VERIFIER, revision);
    let accepted: Vec<String> = keys.iter().map(|(v, _)| v.to_string()).collect();
    files.insert(k::ACCEPTED_FILE.into(), accepted.join(",").into_bytes());
    for (v, key) in keys {
        files.insert(k::digest_file(*v), key.digest().into_bytes());
    }
    files
}

/// A verifier Secret's files with plain keys (`verifierFormat: Plain`).
pub fn verifier_plain(
    rotation: &str,
    revision: u64,
    keys: &[(u64, &SecretKey)],
) -> BTreeMap<String, Vec<u8>> {
    let mut files = base(rotation, k::ROLE_VERIFIER, revision);
    let accepted: Vec<String> = keys.iter().map(|(v, _)| v.to_string()).collect();
    files.insert(k::ACCEPTED_FILE.into(), accepted.join(",").into_bytes());
    for (v, key) in keys {
        files.insert(k::plain_file(*v), key.expose().as_bytes().to_vec());
    }
    files
}

/// A presenter Secret's files with `key` as version `version`.
pub fn presenter(
    rotation: &str,
    revision: u64,
    version: u64,
    key: &SecretKey,
) -> BTreeMap<String, Vec<u8>> {
    let mut files = base(rotation, k::ROLE_PRESENTER, revision);
    files.insert(k::VERSION.into(), version.to_string().into_bytes());
    files.insert(k::KEY.into(), key.expose().as_bytes().to_vec());
    files
}
