//! What Argo CD showed while keyrotor worked, polled every 250 ms (by
//! [`crate::e2e::recorder`]): one Application's sync status, revision and
//! history, the health Argo CD computed for one ApiKeyRotation, and that
//! rotation's own stage. A scenario marks when the Application has synced a
//! commit and must stay Synced at it (until the next commit); from the
//! record it finds drift and says which health Argo CD gave each stage.

use kube::Client;
use serde_json::Value;

use super::{APPLICATION, resource};
use crate::e2e::objects::Object;
use crate::e2e::recorder::{self, counts, shown, stage};

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

/// Argo CD's record ([`recorder::Recorder`]) of [`Seen`] looks.
pub type Recorder = recorder::Recorder<Seen>;

impl Recorder {
    /// Records Application `app` (in Argo CD's namespace `argocd`) and
    /// rotation `rotation` of namespace `ns`.
    pub fn start(client: Client, argocd: &str, app: &str, ns: &str, rotation: &str) -> Recorder {
        let app = Object::new(&client, argocd, APPLICATION, app);
        Recorder::record(app, ns, rotation, see)
    }
}

/// What Application `a` and rotation `r` show.
fn see(settled: Option<String>, a: &Value, r: &Value) -> Seen {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let name = r["metadata"]["name"].as_str().unwrap_or_default();
    let health = resource(a, "ApiKeyRotation", name)
        .map(|h| (text(&h["health"]["status"]), text(&h["health"]["message"])))
        .unwrap_or_default();
    let (stage, waiting) = stage(r);
    let observed = r["status"]["observedGeneration"].as_i64().unwrap_or(0);
    Seen {
        settled,
        sync: text(&a["status"]["sync"]["status"]),
        revision: text(&a["status"]["sync"]["revision"]),
        history: a["status"]["history"].as_array().map_or(0, Vec::len),
        health,
        stage,
        waiting,
        behind: observed < r["metadata"]["generation"].as_i64().unwrap_or(0),
    }
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
    counts(seen.iter().map(|s| {
        let behind = if s.behind {
            ", spec not yet observed"
        } else {
            ""
        };
        let (status, message) = &s.health;
        let status = if status.is_empty() { "nothing" } else { status };
        format!(
            "{} ({}{behind}) -> Argo CD {status}: {message}",
            shown(&s.stage),
            s.waiting
        )
    }))
}
