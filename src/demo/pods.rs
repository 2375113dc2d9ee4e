//! Simulated consumer pods for the demo: each loads its Secret after its own
//! kubelet delay (at once when keyrotor nudges it), reports what it loaded
//! like the reporter sidecar, and serves or sends requests. Verification is
//! real: the presenter's key file is hashed and compared with the digests in
//! the verifier's files.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::keys::digest_of;
use crate::wire::{self as k, LastSeen, Nudge, REPORTER_MANAGER, RevisionReport, USAGE_MANAGER};

use super::Error;

const NS: &str = "default";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Verifier,
    Presenter,
}

struct SimPod {
    name: String,
    role: Role,
    secret: String,
    delay: Duration,
    /// resourceVersion and files of the Secret revision the pod holds.
    loaded: Option<(String, BTreeMap<String, Vec<u8>>)>,
    pending_since: Option<Instant>,
    nudge: Option<Nudge>,
    /// Verifiers: when each version was last presented to this pod.
    seen: BTreeMap<u64, Timestamp>,
    seen_reported: BTreeMap<u64, Timestamp>,
}

/// Request counters.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub rejected: AtomicU64,
    pub rejected_outside: AtomicU64,
}

pub struct Pods {
    pub stats: Arc<Stats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Pods {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct PodsConfig<'a> {
    pub rotation: &'a str,
    pub verifier_secret: &'a str,
    pub presenter_secret: &'a str,
    pub per_role: usize,
    pub delays: (Duration, Duration),
    pub seed: u64,
    /// Report loaded revisions and traffic like the reporter and client library.
    pub report: bool,
}

/// Creates the pods and starts their kubelets, reporters and traffic.
pub async fn start(client: Client, cfg: PodsConfig<'_>) -> Result<Pods, Error> {
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut sims = Vec::new();
    for (role, prefix, secret) in [
        (Role::Verifier, "server", cfg.verifier_secret),
        (Role::Presenter, "client", cfg.presenter_secret),
    ] {
        for i in 0..cfg.per_role {
            let name = format!("{prefix}-{i}");
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": NS, "labels": {"app": prefix}},
                "spec": {"containers": [{"name": "app", "image": "app"}],
                         "volumes": [{"name": "key", "secret": {"secretName": secret}}]},
            }))?;
            pods_api.create(&PostParams::default(), &pod).await?;
            let status = json!({"status": {"phase": "Running"}});
            pods_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            let (lo, hi) = (
                cfg.delays.0.as_millis() as u64,
                cfg.delays.1.as_millis() as u64,
            );
            sims.push(SimPod {
                name,
                role,
                secret: secret.to_string(),
                delay: Duration::from_millis(rng.random_range(lo..=hi.max(lo))),
                loaded: None,
                pending_since: None,
                nudge: None,
                seen: BTreeMap::new(),
                seen_reported: BTreeMap::new(),
            });
        }
    }
    let sims = Arc::new(Mutex::new(sims));
    let stats = Arc::new(Stats::default());
    let rotation = cfg.rotation.to_string();
    let kubelet = tokio::spawn(kubelet(
        client.clone(),
        sims.clone(),
        rotation.clone(),
        cfg.report,
    ));
    let traffic = tokio::spawn(traffic(
        client.clone(),
        sims.clone(),
        stats.clone(),
        cfg.presenter_secret.to_string(),
        cfg.seed,
    ));
    let mut tasks = vec![kubelet, traffic];
    if cfg.report {
        tasks.push(tokio::spawn(report_traffic(client, sims, rotation)));
    }
    Ok(Pods { stats, tasks })
}

fn files(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Every 50 ms: a pod whose Secret changed loads it once its delay passed, or
/// at once if keyrotor nudged it; then it reports the revision it loaded.
async fn kubelet(client: Client, sims: Arc<Mutex<Vec<SimPod>>>, rotation: String, report: bool) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let nudge_key = k::nudge(&rotation);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (Ok(secret_list), Ok(pod_list)) = (
            secrets.list(&Default::default()).await,
            pods.list(&Default::default()).await,
        ) else {
            continue;
        };
        let by_name: BTreeMap<String, &Secret> = secret_list
            .items
            .iter()
            .map(|s| (s.name_any(), s))
            .collect();
        let nudges: BTreeMap<String, Nudge> = pod_list
            .items
            .iter()
            .filter_map(|p| {
                let nudge = Nudge::parse(p.annotations().get(&nudge_key)?).ok()?;
                Some((p.name_any(), nudge))
            })
            .collect();
        let mut reports = Vec::new();
        {
            let mut sims = sims.lock().unwrap_or_else(|e| e.into_inner());
            for pod in sims.iter_mut() {
                let Some(secret) = by_name.get(&pod.secret) else {
                    continue;
                };
                let rv = secret.resource_version().unwrap_or_default();
                if pod.loaded.as_ref().is_some_and(|(v, _)| *v == rv) {
                    pod.pending_since = None;
                    continue;
                }
                let since = *pod.pending_since.get_or_insert_with(Instant::now);
                let nudged = nudges
                    .get(&pod.name)
                    .is_some_and(|n| pod.nudge.as_ref() != Some(n));
                if nudged {
                    pod.nudge = nudges.get(&pod.name).cloned();
                }
                if nudged || since.elapsed() >= pod.delay || pod.loaded.is_none() {
                    let data = files(secret);
                    if report {
                        for (key, value) in reports_of(&rotation, &data) {
                            reports.push((pod.name.clone(), key, value));
                        }
                    }
                    pod.loaded = Some((rv, data));
                    pod.pending_since = None;
                }
            }
        }
        for (pod, key, rev) in reports {
            let patch = json!({"metadata": {"annotations": {key: rev}}});
            let _ = pods
                .patch(
                    &pod,
                    &PatchParams {
                        field_manager: Some(REPORTER_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await;
        }
    }
}

/// The revision reports a pod that loaded `files` writes, as the reporter
/// sidecar does: one per role the Secret serves.
fn reports_of(rotation: &str, files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, String)> {
    let text = |name: &str| {
        files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let (Some(revision), Some(roles)) = (text(k::REVISION_FILE), text(k::ROLE_FILE)) else {
        return Vec::new();
    };
    let Some(revision) = k::parse_number(revision.trim_ascii()).map(RevisionReport) else {
        return Vec::new();
    };
    k::roles(&roles)
        .map(|role| revision.annotation(rotation, role))
        .collect()
}

/// Whether a verifier holding `files` accepts `key`, and as which version:
/// the versions its `accepted` file lists, compared by digest.
fn verify(files: &BTreeMap<String, Vec<u8>>, key: &[u8]) -> Option<u64> {
    let digest = digest_of(key);
    let accepted = String::from_utf8_lossy(files.get(k::ACCEPTED_FILE)?).into_owned();
    accepted
        .split(',')
        .filter_map(|v| k::parse_number(v.trim_ascii()))
        .find(|v| files.get(&k::digest_file(*v)).map(Vec::as_slice) == Some(digest.as_bytes()))
}

/// Every 20 ms each presenter calls a verifier; an outside client that
/// re-reads the key only every 3 s calls too.
async fn traffic(
    client: Client,
    sims: Arc<Mutex<Vec<SimPod>>>,
    stats: Arc<Stats>,
    presenter_secret: String,
    seed: u64,
) {
    let secrets: Api<Secret> = Api::namespaced(client, NS);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut outside: Option<Vec<u8>> = None;
    let mut outside_read = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if outside_read.elapsed() >= Duration::from_secs(3) {
            if let Ok(Some(s)) = secrets.get_opt(&presenter_secret).await {
                outside = files(&s).remove(k::KEY);
            }
            outside_read = Instant::now();
        }
        let mut sims = sims.lock().unwrap_or_else(|e| e.into_inner());
        let verifiers: Vec<usize> = (0..sims.len())
            .filter(|i| sims[*i].role == Role::Verifier && sims[*i].loaded.is_some())
            .collect();
        if verifiers.is_empty() {
            continue;
        }
        let keys: Vec<Option<Vec<u8>>> = sims
            .iter()
            .filter(|p| p.role == Role::Presenter)
            .map(|p| p.loaded.as_ref().and_then(|(_, f)| f.get(k::KEY).cloned()))
            .chain(std::iter::once(outside.clone()))
            .collect();
        let last = keys.len() - 1;
        for (i, key) in keys.into_iter().enumerate() {
            let Some(key) = key else { continue };
            let q = verifiers[rng.random_range(0..verifiers.len())];
            let accepted = sims[q].loaded.as_ref().and_then(|(_, f)| verify(f, &key));
            stats.requests.fetch_add(1, Ordering::Relaxed);
            match accepted {
                Some(v) => {
                    sims[q].seen.insert(v, Timestamp::now());
                }
                None => {
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                    if i == last {
                        stats.rejected_outside.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Verifiers report when they last saw each version, at most once a second
/// per pod (the client library's coarse usage report), for Traffic mode.
async fn report_traffic(client: Client, sims: Arc<Mutex<Vec<SimPod>>>, rotation: String) {
    let pods: Api<Pod> = Api::namespaced(client, NS);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let updates: Vec<(String, (String, String))> = {
            let mut sims = sims.lock().unwrap_or_else(|e| e.into_inner());
            sims.iter_mut()
                .filter(|p| p.role == Role::Verifier && p.seen != p.seen_reported)
                .map(|p| {
                    p.seen_reported = p.seen.clone();
                    (
                        p.name.clone(),
                        LastSeen(p.seen.clone()).annotation(&rotation),
                    )
                })
                .collect()
        };
        for (pod, (key, value)) in updates {
            let patch = json!({"metadata": {"annotations": {key: value}}});
            let _ = pods
                .patch(
                    &pod,
                    &PatchParams {
                        field_manager: Some(USAGE_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await;
        }
    }
}
