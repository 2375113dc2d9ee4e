//! The presenter side of the client library: the current key, always the
//! one kubelet last delivered, as a redacting [`SecretKey`], with the user
//! name it goes with when the rotation has `spec.usernames`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::keys::SecretKey;
pub use crate::store::Presented;
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

    /// The key to send now, with its version and user name, from one
    /// snapshot (asking for them one by one could straddle a reload).
    pub fn presented(&self) -> Option<Presented> {
        self.store.snapshot().current.clone()
    }

    /// The key to send now, with its version.
    pub fn current(&self) -> Option<(Version, SecretKey)> {
        self.presented().map(|p| (p.version(), p.key().clone()))
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "fake-test-key-v4-not-a-secret";

    /// A plain presenter directory, removed when the test ends.
    struct Dir(PathBuf);

    impl Dir {
        fn presenter(name: &str, username: Option<&str>) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("keyrotor-presenter-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut files = vec![
                ("rotation", "orders"),
                ("role", "presenter"),
                ("revision", "9"),
                ("version", "4"),
                ("key", KEY),
            ];
            files.extend(username.map(|u| ("username", u)));
            for (file, text) in files {
                std::fs::write(dir.join(file), text).unwrap();
            }
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_key_comes_with_the_user_name_of_its_version() {
        let dir = Dir::presenter("with-username", Some("app_blue\n"));
        let presenter = Presenter::open(&dir.0).unwrap();
        let presented = presenter.presented().unwrap();
        assert_eq!(presented.version(), 4);
        assert_eq!(presented.key().expose(), KEY);
        assert_eq!(presented.username(), Some("app_blue"));

        let dir = Dir::presenter("without-username", None);
        let presented = Presenter::open(&dir.0).unwrap().presented().unwrap();
        assert_eq!(presented.username(), None, "no file, no user name");
    }

    #[test]
    fn debug_shows_the_user_name_and_version_but_never_the_key() {
        let dir = Dir::presenter("debug", Some("app_blue"));
        let presenter = Presenter::open(&dir.0).unwrap();
        let shown = format!(
            "{presenter:?} {:?} {:?}",
            presenter.store().snapshot(),
            presenter.presented().unwrap()
        );
        assert!(!shown.contains(KEY), "Debug never shows a key: {shown}");
        assert!(shown.contains("\"app_blue\""), "{shown}");
        assert!(shown.contains("version: 4"), "{shown}");
    }

    #[test]
    fn a_user_name_that_is_not_one_fails_the_load_without_quoting_it() {
        let dir = Dir::presenter("bad-name", Some("app blue"));
        let err = Presenter::open(&dir.0).unwrap_err();
        assert_eq!(err.class(), "malformed");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("/username"),
            "the error names the file: {shown}"
        );
        assert!(
            !shown.contains("app blue") && !shown.contains(KEY),
            "{shown}"
        );
    }
}
