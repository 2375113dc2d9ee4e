//! Controllers run as host processes: a tool built by a script of
//! tests/cluster (once, cached across runs), and a set of named processes,
//! each with a log file of its own, that fails loudly when one has exited
//! and gives the logs' tails for a failure's message. Every process is
//! stopped by its PID, latest first, when the set is stopped or dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::cluster::repo;

/// What `script` (a build script of tests/cluster, e.g.
/// `tests/cluster/flux/build`) prints: the directory of what it built.
/// `what` names the tool in a failure.
pub fn build(script: &str, what: &str) -> PathBuf {
    let out = Command::new(repo().join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script} (needs Go): {e}"));
    assert!(out.status.success(), "building {what} failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Named processes with their logs in `dir`, under the name of what they
/// make up (`Argo CD`, `Flux`).
pub struct Procs {
    label: &'static str,
    dir: PathBuf,
    procs: Vec<Proc>,
}

struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Procs {
    /// No process yet; their logs go to `dir` (which exists).
    pub fn new(label: &'static str, dir: &Path) -> Procs {
        Procs {
            label,
            dir: dir.to_path_buf(),
            procs: Vec::new(),
        }
    }

    /// Starts `cmd` as process `name`, its output to `<dir>/<name>.log`.
    pub fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let log = self.log_path(name);
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}'s {name}: {e}", self.label));
        self.procs.push(Proc { name, child, log });
    }

    /// Where process `name` logs.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Fails if a process has exited.
    pub fn check_running(&mut self) {
        let mut gone = Vec::new();
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                gone.push(format!("{} exited ({status})", p.name));
            }
        }
        assert!(
            gone.is_empty(),
            "{}\n{}",
            gone.join("; "),
            self.log_tails(40)
        );
    }

    /// Each process's log (`<label> <name>`, text), for the scan for key
    /// material.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.procs
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                (format!("{} {}", self.label, p.name), text)
            })
            .collect()
    }

    /// The last `lines` lines of each log, for a failure's message.
    pub fn log_tails(&self, lines: usize) -> String {
        self.logs()
            .iter()
            .map(|(name, text)| {
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("--- {name} (last {lines} lines)\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops every process, the latest started first (what depends on the
    /// others goes first); after a failure, prints the logs' tails.
    pub fn stop(&mut self) {
        if std::thread::panicking() && !self.procs.is_empty() {
            eprintln!("{}", self.log_tails(60));
        }
        for mut p in self.procs.drain(..).rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop();
    }
}
