//! Reading a mounted Secret volume consistently.
//!
//! kubelet writes a new timestamped directory, then renames a new `..data`
//! symlink over the old one; the visible files are symlinks through `..data`.
//! Reading every file through one resolved `..data` target therefore gives a
//! consistent set even while kubelet swaps, and the target's name is a cheap
//! change token (one `readlink`, no inotify). A plain directory (local
//! development, a ConfigMap copied by hand) works too, without the token.

use std::io;
use std::path::{Path, PathBuf};

/// The name of kubelet's atomic-swap symlink.
pub const DATA_LINK: &str = "..data";

/// Identifies one generation of a volume's contents: the `..data` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation(PathBuf);

/// Why a file could not be read. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("{0} kept changing while it was read")]
    Unstable(PathBuf),
}

/// The current generation of `dir`, or `None` when it has no `..data` link.
pub fn generation(dir: &Path) -> Result<Option<Generation>, VolumeError> {
    match std::fs::read_link(dir.join(DATA_LINK)) {
        Ok(target) => Ok(Some(Generation(target))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Not a symlink: a plain directory named `..data`, treat as plain.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(None),
        Err(source) => Err(VolumeError::Io {
            file: dir.join(DATA_LINK),
            source,
        }),
    }
}

/// Files of one generation, read through its resolved directory.
pub struct Files {
    root: PathBuf,
    generation: Option<Generation>,
}

impl Files {
    /// The generation these files belong to.
    pub fn generation(&self) -> Option<&Generation> {
        self.generation.as_ref()
    }

    /// A file's bytes, `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, VolumeError> {
        let file = self.root.join(name);
        match std::fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VolumeError::Io { file, source }),
        }
    }

    /// A small text file (metadata, never a key), trimmed.
    pub fn text(&self, name: &str) -> Result<Option<String>, VolumeError> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| self.invalid(name, "is not UTF-8"))
    }

    /// A required text file.
    pub fn required(&self, name: &str) -> Result<String, VolumeError> {
        self.text(name)?
            .ok_or_else(|| self.invalid(name, "is missing"))
    }

    /// An error about `name` (the reason must never quote the contents).
    pub fn invalid(&self, name: &str, reason: &str) -> VolumeError {
        VolumeError::Invalid {
            file: self.root.join(name),
            reason: reason.to_string(),
        }
    }
}

/// Reads `dir` with `read`, retrying when kubelet swapped the volume in
/// between, so the result never mixes two generations.
pub fn read_consistent<T>(
    dir: &Path,
    mut read: impl FnMut(&Files) -> Result<T, VolumeError>,
) -> Result<(T, Option<Generation>), VolumeError> {
    for _ in 0..5 {
        let before = generation(dir)?;
        let root = match &before {
            Some(Generation(target)) => dir.join(target),
            None => dir.to_path_buf(),
        };
        let files = Files {
            root,
            generation: before.clone(),
        };
        let result = read(&files);
        if generation(dir)? == before {
            return result.map(|value| (value, before));
        }
        // Swapped under us (kubelet deletes the old directory afterwards, so
        // an error above may only be the swap): read the new one.
    }
    Err(VolumeError::Unstable(dir.to_path_buf()))
}
