//! What Flux showed while keyrotor worked, polled every 250 ms: one
//! Kustomization's Ready and Healthy conditions and last applied revision,
//! one ApiKeyRotation's stage and kstatus's verdict on it. A scenario marks
//! when the Kustomization has applied a commit and must stay there (until
//! the next commit); from the record it finds drift and says what kstatus
//! and Flux made of each stage. kustomize-controller's own apply report
//! (its log, one line per reconcile) says what each apply changed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{KUSTOMIZATION, condition, revision};
use crate::kstatus;

/// One look.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The commit the Kustomization was to stay applied at, if one was.
    pub settled: Option<String>,
    /// The Kustomization's Ready condition (status, reason, message).
    pub ready: (String, String, String),
    /// Its Healthy condition (the `wait` health check): status, reason.
    pub healthy: (String, String),
    pub last_applied: String,
    /// The rotation's stage and its Progressing reason.
    pub stage: String,
    pub waiting: String,
    /// kstatus's verdict on the rotation (status, reason).
    pub kstatus: (&'static str, String),
}

pub struct Recorder {
    stop: Arc<AtomicBool>,
    settled: Arc<Mutex<Option<String>>>,
    task: JoinHandle<Vec<Seen>>,
}

impl Recorder {
    /// Records Kustomization `ks` (in Flux's namespace `flux`) and rotation
    /// `rotation` of namespace `ns`.
    pub fn start(client: Client, flux: &str, ks: &str, ns: &str, rotation: &str) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(Mutex::new(None::<String>));
        let kss = KUSTOMIZATION.api(&client, flux);
        let rotations = Api::namespaced(client, ns);
        let (ks, rotation) = (ks.to_string(), rotation.to_string());
        let (stopped, mark) = (stop.clone(), settled.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let settled = mark.lock().unwrap().clone();
                if let Some(s) = look(&kss, &rotations, &ks, &rotation, settled).await {
                    seen.push(s);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            seen
        });
        Recorder {
            stop,
            settled,
            task,
        }
    }

    /// From now on the Kustomization must stay applied at `commit`; `None`
    /// while a commit is on its way.
    pub fn settle(&self, commit: Option<&str>) {
        *self.settled.lock().unwrap() = commit.map(String::from);
    }

    pub async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the recorder")
    }
}

async fn look(
    kss: &Api<DynamicObject>,
    rotations: &Api<ApiKeyRotation>,
    ks: &str,
    rotation: &str,
    settled: Option<String>,
) -> Option<Seen> {
    let k = serde_json::to_value(kss.get_opt(ks).await.ok()??).ok()?;
    let r = serde_json::to_value(rotations.get_opt(rotation).await.ok()??).ok()?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let waiting = r["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .map(|c| text(&c["reason"]))
        .unwrap_or_default();
    let healthy = condition(&k, "Healthy");
    Some(Seen {
        settled,
        ready: condition(&k, "Ready"),
        healthy: (healthy.0, healthy.1),
        last_applied: text(&k["status"]["lastAppliedRevision"]),
        stage: text(&r["status"]["stage"]),
        waiting,
        kstatus: kstatus::verdict(&r),
    })
}

/// The looks that show drift: the Kustomization was to stay applied at a
/// commit and had applied another, or was not Ready (Unknown is a
/// reconcile in progress, which Flux shows at every interval).
pub fn drift(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| {
            s.settled
                .as_ref()
                .is_some_and(|c| s.ready.0 == "False" || s.last_applied != revision(c))
        })
        .collect()
}

/// How often each (stage, Progressing reason) showed each kstatus verdict
/// and Kustomization health, in the order first seen.
pub fn by_stage(seen: &[Seen]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        let stage = if s.stage.is_empty() {
            "no status"
        } else {
            &s.stage
        };
        let key = format!(
            "{stage} ({}) -> kstatus {} ({}); Kustomization Ready={} ({}), Healthy={} ({})",
            s.waiting, s.kstatus.0, s.kstatus.1, s.ready.0, s.ready.1, s.healthy.0, s.healthy.1
        );
        counts.entry(key).or_insert((i, 0)).1 += 1;
    }
    let mut rows: Vec<(usize, String, usize)> = counts
        .into_iter()
        .map(|(k, (first, n))| (first, k, n))
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, k, n)| (k, n)).collect()
}

/// One entry of kustomize-controller's apply report: at `revision`, the
/// server-side apply did `action` (created, configured, unchanged, ...) to
/// `object` (`Kind/namespace/name`).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub revision: String,
    pub object: String,
    pub action: String,
}

/// Every apply kustomize-controller reported in `log` (its JSON lines
/// "server-side apply completed") for Kustomization `ks`, in order.
pub fn applies(log: &str, ks: &str) -> Vec<Applied> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["msg"] != "server-side apply completed" || v["name"] != ks {
            continue;
        }
        let revision = v["revision"].as_str().unwrap_or_default();
        for (object, action) in v["output"].as_object().into_iter().flatten() {
            out.push(Applied {
                revision: revision.to_string(),
                object: object.clone(),
                action: action.as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}
