//! Outages of the Kubernetes API, told apart from ordinary failures, and the
//! moment one ends.
//!
//! After kube-apiserver restarts, kube-runtime's watchers retry their watch
//! from the last resourceVersion they saw, which the new server's watch
//! cache may not serve ("too old resource version"); with their backoff
//! grown during the outage, the caches stayed stale and no scheduled
//! reconcile ran (on the real control plane: a rotation still in Promoting
//! 120 s after the API's return, where the undisturbed step takes 10 s;
//! a freshly started operator has no such state). So every
//! failure makes the API *suspect*: one probe (`GET /version`) tells a
//! passing error from an outage. While the API does not answer, `/readyz`
//! says so and rotations pause (keys stay valid, I7). When it answers again
//! after an outage, [`ApiHealth::outages`] ticks and each controller starts
//! afresh — new watches, freshly listed caches, no backoff carried over —
//! which is what a restarted operator does, in seconds.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::ops::Health;

/// How long one probe may take, and the pause between probes while down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

pub struct ApiHealth {
    client: Client,
    suspect: Notify,
    ended: watch::Sender<u64>,
}

impl ApiHealth {
    pub fn new(client: Client) -> Arc<ApiHealth> {
        Arc::new(ApiHealth {
            client,
            suspect: Notify::new(),
            ended: watch::channel(0).0,
        })
    }

    /// A request failed: check whether the API is there (cheap; repeated
    /// calls before the probe runs coalesce into one).
    pub fn suspect(&self) {
        self.suspect.notify_one();
    }

    /// Ticks each time an outage ends.
    pub fn outages(&self) -> watch::Receiver<u64> {
        self.ended.subscribe()
    }

    /// Probes the API after each suspicion, for as long as the process runs.
    pub async fn run(self: Arc<Self>, health: Arc<Health>) {
        loop {
            self.suspect.notified().await;
            let mut down = false;
            while !self.answers().await {
                if !down {
                    warn!(
                        "the Kubernetes API does not answer; rotations pause, every key stays valid"
                    );
                    health.waiting("the Kubernetes API does not answer");
                    down = true;
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            if down {
                info!("the Kubernetes API answers again; watches and caches start afresh");
                self.ended.send_modify(|n| *n += 1);
            }
            // At most one probe a second, however many requests fail.
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    async fn answers(&self) -> bool {
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.client.apiserver_version()).await,
            Ok(Ok(_))
        )
    }
}
