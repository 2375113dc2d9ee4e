//! Reading a mounted Secret volume consistently.
//!
//! kubelet writes a new timestamped directory, then renames a new `..data`
//! symlink over the old one; the visible files are symlinks through `..data`.
//! Reading every file through one resolved `..data` target therefore gives a
//! consistent set even while kubelet swaps, and the target's name is a cheap
//! change token (one `readlink`, no inotify). A plain directory (local
//! development, a ConfigMap copied by hand) works too, without the token.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The name of kubelet's atomic-swap symlink.
pub const DATA_LINK: &str = "..data";

/// Largest metadata file read (`rotation`, `role`, `revision`, `version`,
/// `accepted`, `v<N>.sha256`); a larger one is malformed, not read whole.
pub const MAX_TEXT_FILE: usize = 4096;

/// How many times a read is repeated when kubelet swapped the volume in
/// between, before it fails as unstable.
pub const READ_ATTEMPTS: usize = 5;

/// Identifies one generation of a volume's contents: the `..data` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation(PathBuf);

impl Generation {
    /// Where `..data` points (kubelet: `..<timestamp>`).
    pub fn target(&self) -> &Path {
        &self.0
    }
}

/// Why a file could not be read. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file the directory must hold is absent (also: no directory at all).
    #[error("{file}: is missing")]
    Missing { file: PathBuf },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("{0} kept changing while it was read")]
    Unstable(PathBuf),
}

impl VolumeError {
    /// The language-neutral error class (docs/wire.md, tests/wire/volumes):
    /// `io`, `missing`, `malformed` or `unstable`.
    pub fn class(&self) -> &'static str {
        match self {
            VolumeError::Io { .. } => "io",
            VolumeError::Missing { .. } => "missing",
            VolumeError::Invalid { .. } => "malformed",
            VolumeError::Unstable(_) => "unstable",
        }
    }
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

    /// A file's bytes, `None` when it does not exist; a file longer than
    /// `max` bytes is malformed. The buffer is allocated once, at `max + 1`
    /// bytes, so a key is never copied into memory that is freed unwiped.
    pub fn read(&self, name: &str, max: usize) -> Result<Option<Vec<u8>>, VolumeError> {
        let file = self.root.join(name);
        let io = |source| VolumeError::Io {
            file: file.clone(),
            source,
        };
        let opened = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut bytes = Vec::with_capacity(max + 1);
        opened
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() > max {
            return Err(self.invalid(name, &format!("is larger than {max} bytes")));
        }
        Ok(Some(bytes))
    }

    /// A small text file (metadata, never a key), without the ASCII
    /// whitespace around it.
    pub fn text(&self, name: &str) -> Result<Option<String>, VolumeError> {
        let Some(bytes) = self.read(name, MAX_TEXT_FILE)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(|s| Some(s.trim_ascii().to_string()))
            .map_err(|_| self.invalid(name, "is not UTF-8"))
    }

    /// A required text file.
    pub fn required(&self, name: &str) -> Result<String, VolumeError> {
        self.text(name)?.ok_or_else(|| self.missing(name))
    }

    /// `name` is absent.
    pub fn missing(&self, name: &str) -> VolumeError {
        VolumeError::Missing {
            file: self.root.join(name),
        }
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
    for _ in 0..READ_ATTEMPTS {
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
