//! The simulated kubelet and reporter sidecar: what a consumer pod reports
//! once it has loaded a projected Secret, and the kubelet of the controller
//! tests' [`Harness`](crate::harness::Harness). The scale bench drives the
//! same reports from a watch at scale (`bench::cluster`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::controller::objects::pods::secret_refs;
use keyrotor::wire::{self as k, RevisionReport};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The annotations a pod that loaded `secret` reports, as the reporter
/// sidecar does: (report key, revision), one per role the Secret serves.
/// Reads the Secret's `rotation`, `role` and `revision` files only; the key
/// is never looked at. None for a Secret keyrotor does not project.
pub fn reports(secret: &Secret) -> Option<Vec<(String, String)>> {
    let data = secret.data.as_ref()?;
    let text = |f: &str| {
        data.get(f)
            .map(|b| String::from_utf8_lossy(&b.0).trim_ascii().to_string())
    };
    let (rotation, roles) = (text(k::ROTATION_FILE)?, text(k::ROLE_FILE)?);
    let revision = RevisionReport(k::parse_number(&text(k::REVISION_FILE)?)?);
    Some(
        k::roles(&roles)
            .map(|role| revision.annotation(&rotation, role))
            .collect(),
    )
}

/// Every 30 ms each running pod in `ns` that is not `stuck` "loads" the
/// projected Secrets it mounts and reports their revisions in its
/// annotations, one key per rotation and role.
pub async fn poll(client: Client, ns: &str, stuck: Arc<Mutex<BTreeSet<String>>>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let Ok(list) = pods.list(&Default::default()).await else {
            continue;
        };
        for pod in list.items {
            let name = pod.name_any();
            if stuck.lock().unwrap().contains(&name) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let mut reports = BTreeMap::new();
            for secret in pod.spec.as_ref().map(secret_refs).unwrap_or_default() {
                let Ok(Some(s)) = secrets.get_opt(&secret).await else {
                    continue;
                };
                for (key, revision) in self::reports(&s).unwrap_or_default() {
                    if pod.annotations().get(&key) != Some(&revision) {
                        reports.insert(key, revision);
                    }
                }
            }
            if !reports.is_empty() {
                let patch = json!({"metadata": {"annotations": reports}});
                let _ = pods
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }
    }
}
