//! The skeleton of a record of what a GitOps tool showed while keyrotor
//! worked: a background task that looks every 250 ms at one of the tool's
//! objects and one ApiKeyRotation, and keeps what the tool's own `seen`
//! makes of the pair. A scenario marks when the tool must stay settled at a
//! commit (until the next one); each look carries that mark, from which
//! the tool's record finds drift. Also the pieces both records' summaries
//! are built from: a rotation's stage and Progressing reason, and counts of
//! rows in the order first seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::objects::Object;

/// What one look makes of the mark (the commit the tool was to stay
/// settled at, if one was), the tool's object and the rotation.
pub type See<S> = fn(Option<String>, &Value, &Value) -> S;

pub struct Recorder<S> {
    stop: Arc<AtomicBool>,
    settled: Arc<Mutex<Option<String>>>,
    task: JoinHandle<Vec<S>>,
}

impl<S: Send + 'static> Recorder<S> {
    /// Records `object` and rotation `rotation` of namespace `ns`, each
    /// look as `see` makes it; a look at which either is missing or
    /// unreadable is left out.
    pub fn record(object: Object<'_>, ns: &str, rotation: &str, see: See<S>) -> Recorder<S> {
        let stop = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(Mutex::new(None::<String>));
        let objects = object.kind.api(object.client, object.namespace);
        let rotations: Api<ApiKeyRotation> = Api::namespaced(object.client.clone(), ns);
        let (name, rotation) = (object.name.to_string(), rotation.to_string());
        let (stopped, mark) = (stop.clone(), settled.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let settled = mark.lock().unwrap().clone();
                if let Some((o, r)) = look(&objects, &name, &rotations, &rotation).await {
                    seen.push(see(settled, &o, &r));
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

    /// From now on the tool must stay settled at `commit`; `None` while a
    /// commit is on its way.
    pub fn settle(&self, commit: Option<&str>) {
        *self.settled.lock().unwrap() = commit.map(String::from);
    }

    /// Stops looking; every look, in order.
    pub async fn stop(self) -> Vec<S> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the recorder")
    }
}

/// The object and the rotation as JSON, if both can be read.
async fn look(
    objects: &Api<DynamicObject>,
    name: &str,
    rotations: &Api<ApiKeyRotation>,
    rotation: &str,
) -> Option<(Value, Value)> {
    let o = serde_json::to_value(objects.get_opt(name).await.ok()??).ok()?;
    let r = serde_json::to_value(rotations.get_opt(rotation).await.ok()??).ok()?;
    Some((o, r))
}

/// The rotation's stage and the reason of its Progressing condition.
pub fn stage(rotation: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let waiting = rotation["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .map(|c| text(&c["reason"]))
        .unwrap_or_default();
    (text(&rotation["status"]["stage"]), waiting)
}

/// How often each row occurs, in the order first seen.
pub fn counts(rows: impl IntoIterator<Item = String>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, row) in rows.into_iter().enumerate() {
        counts.entry(row).or_insert((i, 0)).1 += 1;
    }
    let mut rows: Vec<(usize, String, usize)> = counts
        .into_iter()
        .map(|(k, (first, n))| (first, k, n))
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, k, n)| (k, n)).collect()
}

/// A stage as the summaries show it: `no status` before there is one.
pub fn shown(stage: &str) -> &str {
    if stage.is_empty() { "no status" } else { stage }
}
