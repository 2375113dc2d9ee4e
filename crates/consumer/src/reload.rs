//! Background tasks for apps using the library: hot reload with a revision
//! report, and the usage report.
//!
//! The revision is reported only after the new snapshot is in memory, so in
//! Report mode confirmation means "this process uses it", not merely "the
//! volume has it".

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::pod::PodAnnotator;
use crate::presenter::Presenter;
use crate::reporter::annotations;
use crate::store::{KeyStore, Snapshot};
use crate::usage::{Usage, UsageReporter};
use crate::verifier::Verifier;
use crate::volume::VolumeError;

/// Something that reloads a projected-Secret directory.
pub trait Reload: Send + Sync + 'static {
    fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError>;
    fn snapshot(&self) -> Arc<Snapshot>;
}

impl Reload for KeyStore {
    fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        KeyStore::refresh(self)
    }
    fn snapshot(&self) -> Arc<Snapshot> {
        KeyStore::snapshot(self)
    }
}

impl Reload for Verifier {
    fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        Verifier::refresh(self)
    }
    fn snapshot(&self) -> Arc<Snapshot> {
        self.store().snapshot()
    }
}

impl Reload for Presenter {
    fn refresh(&self) -> Result<Option<Arc<Snapshot>>, VolumeError> {
        Presenter::refresh(self)
    }
    fn snapshot(&self) -> Arc<Snapshot> {
        self.store().snapshot()
    }
}

/// Polls `source` every `every` and, with `report` (a [`PodAnnotator`] with
/// the [`crate::wire::REPORTER_MANAGER`] field manager), keeps the pod's report
/// annotations equal to the loaded revision.
pub fn spawn_reload<R: Reload>(
    store: Arc<R>,
    every: Duration,
    report: Option<PodAnnotator>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Report the initial load too: the pod may have started on a new revision.
        let mut pending = report.is_some();
        loop {
            match store.refresh() {
                Ok(Some(snap)) => {
                    tracing::info!(rotation = %snap.meta.rotation, revision = snap.meta.revision, "reloaded keys");
                    pending = report.is_some();
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reload keys; keeping the loaded ones"),
            }
            if pending && let Some(pod) = &report {
                let want = annotations([&store.snapshot().meta]);
                match pod.ensure(&want).await {
                    Ok(_) => pending = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot report the loaded revision; retrying")
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Flushes `usage` through `reporter` every `every` (a fraction of the
/// reporter's interval; the reporter enforces the rate bound itself).
pub fn spawn_usage(
    usage: Arc<Usage>,
    mut reporter: UsageReporter,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = reporter.flush(&usage, jiff::Timestamp::now()).await {
                tracing::warn!(error = %e, "cannot report key usage; retrying later");
            }
        }
    })
}
