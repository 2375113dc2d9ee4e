//! `keyrotor reporter`: a sidecar that confirms what its pod's volumes hold
//! — or, with `--handshake`, what the app's library says its process loaded
//! (`handshake`).
//!
//! It polls each mounted projected-Secret directory's `..data` link (one
//! `readlink` per directory and tick), and when a volume changed, or every
//! resync interval, makes the pod's report annotations
//! (`<rotation>.keyrotor.dev/<role>-revision`) match the revisions on disk.
//! It reads the pod before writing, so a steady state costs no write and an
//! annotation someone removed is reported again. Failures back off
//! exponentially up to a bound, then keep retrying at that bound. It never
//! reads a key file and never writes to disk.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::handshake;
use crate::pod::{MissingEnv, PodAnnotator, PodRef};
use crate::store::Meta;
use crate::volume::{self, Generation, VolumeError};
use crate::wire::{REPORTER_MANAGER, RevisionReport, USAGE_MANAGER, report};

/// How a last-seen annotation key ends (`wire::last_seen`).
const LAST_SEEN_SUFFIX: &str = "/last-seen";

/// Timing of the reporter loop.
#[derive(Clone, Debug)]
pub struct Timing {
    pub poll: Duration,
    pub resync: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(60),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Why a report failed (retried; never contains key material).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("cannot annotate the pod: {0}")]
    Kube(#[from] kube::Error),
}

/// The report annotations for a set of directories' metadata. Two
/// directories of one rotation and role (unusual) report the lower revision:
/// confirmation must not claim more than every volume holds.
pub fn annotations<'a>(metas: impl IntoIterator<Item = &'a Meta>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for m in metas {
        for role in &m.roles {
            let e = out.entry(report(&m.rotation, role)).or_insert(m.revision);
            *e = (*e).min(m.revision);
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, RevisionReport(v).format()))
        .collect()
}

/// The sidecar's state: directories, the pod, what it last saw.
pub struct Reporter {
    dirs: Vec<PathBuf>,
    pod: PodAnnotator,
    /// Writes the last-seen values a library hands over (its own manager).
    usage: PodAnnotator,
    timing: Timing,
    seen: Vec<Option<Generation>>,
    /// With a library in the app: its handshake directory, and the state
    /// of its files last synced.
    handshake: Option<(PathBuf, Option<[u8; 32]>)>,
}

/// What one pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// No volume changed and no resync was due: nothing read from the API.
    Idle,
    /// Checked the pod; `n` annotations written (0 when all were right).
    Synced(usize),
}

impl Reporter {
    pub fn new(client: kube::Client, pod: PodRef, dirs: Vec<PathBuf>, timing: Timing) -> Reporter {
        let seen = vec![None; dirs.len()];
        Reporter {
            dirs,
            pod: PodAnnotator::new(client.clone(), pod.clone(), REPORTER_MANAGER),
            usage: PodAnnotator::new(client, pod, USAGE_MANAGER),
            timing,
            seen,
            handshake: None,
        }
    }

    /// Reports what the app's library says its process loaded, through the
    /// handshake directory `dir`, instead of what the volumes hold
    /// (docs/wire.md#the-handshake-directory).
    pub fn with_handshake(mut self, dir: PathBuf) -> Reporter {
        self.handshake = Some((dir, None));
        self
    }

    fn changed(&self) -> Result<bool, VolumeError> {
        if let Some((dir, seen)) = &self.handshake
            && seen.as_ref() != Some(&handshake::state(dir))
        {
            return Ok(true);
        }
        for (dir, seen) in self.dirs.iter().zip(&self.seen) {
            let now = volume::generation(dir)?;
            // A plain directory has no change token: always re-read it.
            if now.is_none() || &now != seen {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One pass: sync the pod when a volume changed or `force` (resync, retry).
    pub async fn pass(&mut self, force: bool) -> Result<Pass, ReportError> {
        if !force && !self.changed()? {
            return Ok(Pass::Idle);
        }
        let mut metas = Vec::with_capacity(self.dirs.len());
        let mut generations = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let (meta, generation) = Meta::load(dir)?;
            metas.push(meta);
            generations.push(generation);
        }
        let (want, usage, state) = match &self.handshake {
            None => (annotations(&metas), BTreeMap::new(), None),
            Some((dir, _)) => {
                // The state first: a file written meanwhile is synced next time.
                let state = handshake::state(dir);
                let (usage, want) = handshake::reports(dir, &metas)
                    .into_iter()
                    .partition(|(k, _)| k.ends_with(LAST_SEEN_SUFFIX));
                (want, usage, Some(state))
            }
        };
        let written = self.pod.ensure(&want).await? + self.usage.ensure(&usage).await?;
        if written > 0 {
            tracing::info!(pod = %self.pod.pod().name, reports = ?want, "reported loaded revisions");
        }
        // Only after a successful write: a failed pass is retried on the next tick.
        self.seen = generations;
        if let Some((_, seen)) = &mut self.handshake {
            *seen = state;
        }
        Ok(Pass::Synced(written))
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.timing.min_backoff;
        let mut failing = false;
        let mut last_sync = tokio::time::Instant::now();
        let mut first = true;
        loop {
            let due = first || failing || last_sync.elapsed() >= self.timing.resync;
            let delay = match self.pass(due).await {
                Ok(pass) => {
                    if pass != Pass::Idle {
                        last_sync = tokio::time::Instant::now();
                    }
                    first = false;
                    failing = false;
                    backoff = self.timing.min_backoff;
                    self.timing.poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "report failed");
                    failing = true;
                    let delay = backoff;
                    backoff = (backoff * 2).min(self.timing.max_backoff);
                    delay
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// `keyrotor reporter`: build the client, run until SIGTERM or Ctrl-C.
pub async fn main(
    dirs: Vec<PathBuf>,
    timing: Timing,
    handshake: Option<PathBuf>,
) -> Result<(), Error> {
    let pod = PodRef::from_env()?;
    let client = kube::Client::try_default().await.map_err(Error::Client)?;
    tracing::info!(pod = %pod.name, namespace = %pod.namespace, dirs = ?dirs, handshake = ?handshake, "reporter started");
    let reporter = Reporter::new(client, pod, dirs, timing);
    let reporter = match handshake {
        Some(dir) => reporter.with_handshake(dir),
        None => reporter,
    };
    reporter.run(shutdown_signal()).await;
    Ok(())
}

/// Why the reporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pod's name or namespace is missing from the environment.
    #[error(transparent)]
    Pod(#[from] MissingEnv),
    /// No client for the Kubernetes API (no kubeconfig, no in-cluster token).
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
}

/// Resolves on SIGTERM (kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(rotation: &str, roles: &[&str], revision: u64) -> Meta {
        Meta {
            rotation: rotation.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            revision,
        }
    }

    fn revision(a: &BTreeMap<String, String>, rotation: &str, role: &str) -> u64 {
        RevisionReport::parse(&a[&report(rotation, role)])
            .unwrap()
            .0
    }

    #[test]
    fn each_rotation_and_role_gets_its_own_annotation() {
        let a = annotations(&[
            meta("api", &["verifier", "presenter"], 3),
            meta("billing", &["verifier"], 9),
        ]);
        assert_eq!(a.len(), 3);
        assert_eq!(revision(&a, "api", "presenter"), 3);
        assert_eq!(revision(&a, "billing", "verifier"), 9);
    }

    #[test]
    fn two_volumes_of_one_role_report_what_both_hold() {
        let a = annotations(&[meta("api", &["verifier"], 5), meta("api", &["verifier"], 4)]);
        assert_eq!(revision(&a, "api", "verifier"), 4);
    }
}
