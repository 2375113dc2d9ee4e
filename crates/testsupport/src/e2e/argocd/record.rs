//! What Argo CD showed while keyrotor worked, polled every 250 ms: one
//! Application's sync status, revision and history, the health Argo CD
//! computed for one ApiKeyRotation, and that rotation's own stage. A
//! scenario marks when the Application has synced a commit and must stay
//! Synced at it (until the next commit); from the record it finds drift and
//! says which health Argo CD gave each stage.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use kube::Client;
use kube::api::Api;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{APPLICATION, resource};

/// One look.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The revision the Application was to stay Synced at, if one was.
    pub settled: Option<String>,
    pub sync: String,
    pub revision: String,
    /// Sync operations in the Application's history.
    pub history: usize,
    /// Argo CD's health of the rotation (status, message).
    pub health: (String, String),
    /// The rotation's stage and its Progressing reason.
    pub stage: String,
    pub waiting: String,
    /// keyrotor had not yet observed the rotation's latest generation.
    pub behind: bool,
}

pub struct Recorder {
    stop: Arc<AtomicBool>,
    settled: Arc<Mutex<Option<String>>>,
    task: JoinHandle<Vec<Seen>>,
}

impl Recorder {
    /// Records Application `app` (in Argo CD's namespace `argocd`) and
    /// rotation `rotation` of namespace `ns`.
    pub fn start(client: Client, argocd: &str, app: &str, ns: &str, rotation: &str) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(Mutex::new(None::<String>));
        let (apps, rotations) = (
            APPLICATION.api(&client, argocd),
            Api::namespaced(client, ns),
        );
        let (app, rotation) = (app.to_string(), rotation.to_string());
        let (stopped, mark) = (stop.clone(), settled.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let settled = mark.lock().unwrap().clone();
                if let Some(s) = look(&apps, &rotations, &app, &rotation, settled).await {
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

    /// From now on the Application must be Synced at `revision`; `None`
    /// while a commit is on its way.
    pub fn settle(&self, revision: Option<&str>) {
        *self.settled.lock().unwrap() = revision.map(String::from);
    }

    pub async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the recorder")
    }
}

async fn look(
    apps: &Api<kube::api::DynamicObject>,
    rotations: &Api<ApiKeyRotation>,
    app: &str,
    rotation: &str,
    settled: Option<String>,
) -> Option<Seen> {
    let a = serde_json::to_value(apps.get_opt(app).await.ok()??).ok()?;
    let r = serde_json::to_value(rotations.get_opt(rotation).await.ok()??).ok()?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let health = resource(&a, "ApiKeyRotation", rotation)
        .map(|h| (text(&h["health"]["status"]), text(&h["health"]["message"])))
        .unwrap_or_default();
    let waiting = r["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .map(|c| text(&c["reason"]))
        .unwrap_or_default();
    let observed = r["status"]["observedGeneration"].as_i64().unwrap_or(0);
    Some(Seen {
        settled,
        sync: text(&a["status"]["sync"]["status"]),
        revision: text(&a["status"]["sync"]["revision"]),
        history: a["status"]["history"].as_array().map_or(0, Vec::len),
        health,
        stage: text(&r["status"]["stage"]),
        waiting,
        behind: observed < r["metadata"]["generation"].as_i64().unwrap_or(0),
    })
}

/// The looks that show drift: the Application was to stay Synced at a
/// revision and was not.
pub fn drift(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| {
            s.settled
                .as_ref()
                .is_some_and(|r| s.sync != "Synced" || &s.revision != r)
        })
        .collect()
}

/// How often each (stage, Progressing reason, keyrotor behind) showed
/// each health of Argo CD's (status and message), in the order first seen.
pub fn health_by_stage(seen: &[Seen]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        let behind = if s.behind {
            ", spec not yet observed"
        } else {
            ""
        };
        let stage = if s.stage.is_empty() {
            "no status"
        } else {
            &s.stage
        };
        let (status, message) = &s.health;
        let status = if status.is_empty() { "nothing" } else { status };
        let key = format!(
            "{stage} ({}{behind}) -> Argo CD {status}: {message}",
            s.waiting
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
