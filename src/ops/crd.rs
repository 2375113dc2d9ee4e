//! Waiting for the ApiKeyRotation CRD. GitOps tools apply the operator and
//! the CRD in any order, so a missing CRD is a state to wait out and report
//! (in `/readyz` and the log), not a reason to crash-loop.

use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client};
use tracing::{info, warn};

use super::Health;
use crate::api::ApiKeyRotation;

/// Returns once ApiKeyRotations can be listed.
pub async fn wait_for_crd(
    client: &Client,
    namespace: Option<&str>,
    health: &Health,
    every: Duration,
) {
    let api: Api<ApiKeyRotation> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut warned = false;
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {
                if warned {
                    info!("the ApiKeyRotation CRD is installed");
                }
                return;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let why = "waiting for the ApiKeyRotation CRD (apikeyrotations.keyrotor.dev): apply crds/ or enable crds in the chart";
                health.waiting(why);
                if !warned {
                    warn!("{why}");
                    warned = true;
                }
            }
            Err(e) => {
                health.waiting(format!("cannot list ApiKeyRotations: {e}"));
                warn!(error = %e, "cannot list ApiKeyRotations");
            }
        }
        tokio::time::sleep(every).await;
    }
}
