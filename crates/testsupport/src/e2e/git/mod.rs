//! The Git repository a GitOps scenario syncs from: a local repository on
//! branch `main`, read by Argo CD's repo server through a `file://` URL, and
//! by Flux's source-controller (whose GitRepository takes http, https and
//! ssh URLs only) over smart HTTP on loopback ([`http::GitServer`]). A
//! commit is how a scenario changes what the GitOps engine should apply, as
//! a user would.

pub mod http;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct GitRepo {
    pub dir: PathBuf,
}

impl GitRepo {
    /// A new, empty repository at `dir` (removed first if it exists).
    pub fn init(dir: &Path) -> GitRepo {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let repo = GitRepo {
            dir: dir.to_path_buf(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The `file://` URL of the repository (Argo CD reads it there).
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Writes `text` to `path` in the working tree (directories made).
    pub fn write(&self, path: &str, text: &str) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    /// Removes `path` from the working tree.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.join(path)).unwrap();
    }

    /// Copies the directory `from` to `to` in the working tree.
    pub fn copy_dir(&self, from: &Path, to: &str) {
        let target = self.dir.join(to);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-R")
            .arg(from)
            .arg(target)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "copy {} into the repository",
            from.display()
        );
    }

    /// Commits everything in the working tree; the new commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            "user.name=keyrotor e2e",
            "-c",
            "user.email=e2e@keyrotor.dev",
            "commit",
            "-q",
            "-m",
            message,
        ]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}
