//! The handshake directory (docs/wire.md#the-handshake-directory): a
//! library in the app's process tells the reporter sidecar what the process
//! loaded, through files in an `emptyDir` both containers mount, so that
//! confirmation means "the process loaded it" without a Kubernetes client in
//! the app. [`Handshake`] writes the files (a library's side);
//! [`reports`] reads them into the pod annotations (the sidecar's side).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::Meta;
use crate::wire::{LastSeen, RevisionReport, Version, last_seen, report};

/// The file a library writes for `rotation`'s `role` revision.
pub fn revision_file(rotation: &str, role: &str) -> String {
    format!("{rotation}.{role}-revision")
}

/// The file a verifier's library writes for `rotation`'s last-seen value.
pub fn last_seen_file(rotation: &str) -> String {
    format!("{rotation}.last-seen")
}

/// Reads a handshake file; `None` when absent, unreadable or a temporary.
fn read(dir: &Path, name: &str) -> Option<String> {
    if name.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(dir.join(name)).ok()
}

/// The pod annotations the sidecar writes for volumes `metas` from the
/// handshake files in `dir`: each rotation and role's revision report as
/// the process gave it (never the volume's), and a verifier's last-seen in
/// its written form. A file absent or invalid gives no annotation.
pub fn reports<'a>(
    dir: &Path,
    metas: impl IntoIterator<Item = &'a Meta>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in metas {
        for role in &m.roles {
            let file = revision_file(&m.rotation, role);
            match read(dir, &file).map(|t| RevisionReport::parse(&t)) {
                Some(Ok(r)) => {
                    out.insert(report(&m.rotation, role), r.format());
                }
                Some(Err(e)) => {
                    tracing::warn!(file, error = %e.kind, "handshake file does not read; not reported")
                }
                None => {}
            }
        }
        let file = last_seen_file(&m.rotation);
        if let Some(text) = read(dir, &file) {
            match LastSeen::parse_lenient(&text) {
                Ok(seen) => {
                    out.insert(last_seen(&m.rotation), seen.value.format());
                }
                Err(e) => {
                    tracing::warn!(file, error = %e.kind, "handshake file does not read; not reported")
                }
            }
        }
    }
    out
}

/// A digest of the directory's files (names and contents): the sidecar
/// syncs the pod again when it changes.
pub fn state(dir: &Path) -> [u8; 32] {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for n in names {
        let content = std::fs::read(dir.join(&n)).unwrap_or_default();
        h.update((n.len() as u64).to_be_bytes());
        h.update(n.as_bytes());
        h.update((content.len() as u64).to_be_bytes());
        h.update(&content);
    }
    h.finalize().into()
}

/// A library's side: the files of the rotations and roles it serves.
#[derive(Clone, Debug)]
pub struct Handshake {
    dir: PathBuf,
}

impl Handshake {
    pub fn new(dir: impl Into<PathBuf>) -> Handshake {
        Handshake { dir: dir.into() }
    }

    /// From `KEYROTOR_HANDSHAKE_DIR`, when set.
    pub fn from_env() -> Option<Handshake> {
        std::env::var_os("KEYROTOR_HANDSHAKE_DIR")
            .filter(|d| !d.is_empty())
            .map(Handshake::new)
    }

    /// At process start, before the first load: a file left by a process
    /// that stopped speaks for that process only.
    pub fn clear(&self, rotation: &str, roles: &[&str]) -> std::io::Result<()> {
        let names = roles
            .iter()
            .map(|r| revision_file(rotation, r))
            .chain([last_seen_file(rotation)]);
        for name in names {
            match std::fs::remove_file(self.dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The process now uses `revision` of `rotation`'s `role` Secret.
    pub fn loaded(&self, rotation: &str, role: &str, revision: u64) -> std::io::Result<()> {
        self.write(
            &revision_file(rotation, role),
            &RevisionReport(revision).format(),
        )
    }

    /// When the process last saw each version presented (Traffic mode).
    pub fn seen(
        &self,
        rotation: &str,
        seen: &BTreeMap<Version, jiff::Timestamp>,
    ) -> std::io::Result<()> {
        self.write(&last_seen_file(rotation), &LastSeen(seen.clone()).format())
    }

    /// Atomically: a dot-named temporary in the same directory, renamed
    /// over the name; nothing when the content is already there.
    fn write(&self, name: &str, content: &str) -> std::io::Result<()> {
        if read(&self.dir, name).as_deref() == Some(content) {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let dir = std::env::temp_dir()
                .join(format!("keyrotor-handshake-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn meta(roles: &[&str], revision: u64) -> Meta {
        Meta {
            rotation: "orders".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            revision,
        }
    }

    #[test]
    fn the_sidecar_reports_what_the_library_wrote_and_nothing_it_did_not() {
        let dir = Scratch::new();
        let hs = Handshake::new(dir.path());
        let m = meta(&["verifier", "presenter"], 9);
        assert!(reports(dir.path(), [&m]).is_empty(), "nothing loaded yet");
        let before = state(dir.path());
        hs.loaded("orders", "verifier", 7).unwrap();
        assert_ne!(state(dir.path()), before);
        let got = reports(dir.path(), [&m]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[&report("orders", "verifier")],
            "7",
            "the process's revision, not the volume's 9"
        );
        let settled = state(dir.path());
        hs.loaded("orders", "verifier", 7).unwrap();
        assert_eq!(
            state(dir.path()),
            settled,
            "an unchanged value is not rewritten"
        );
        hs.clear("orders", &["verifier", "presenter"]).unwrap();
        assert!(reports(dir.path(), [&m]).is_empty());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "no temporary left behind");
    }
}
