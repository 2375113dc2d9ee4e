//! What Flux showed while keyrotor worked, polled every 250 ms (by
//! [`crate::e2e::recorder`]): one Kustomization's Ready and Healthy
//! conditions and last applied revision, one ApiKeyRotation's stage and
//! kstatus's verdict on it. A scenario marks when the Kustomization has
//! applied a commit and must stay there (until the next commit); from the
//! record it finds drift and says what kstatus and Flux made of each stage.
//! kustomize-controller's own apply report (its log, one line per
//! reconcile) says what each apply changed.

use kube::Client;
use serde_json::Value;

use super::{KUSTOMIZATION, condition, revision};
use crate::e2e::objects::Object;
use crate::e2e::recorder::{self, counts, shown, stage};
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

/// Flux's record ([`recorder::Recorder`]) of [`Seen`] looks.
pub type Recorder = recorder::Recorder<Seen>;

impl Recorder {
    /// Records Kustomization `ks` (in Flux's namespace `flux`) and rotation
    /// `rotation` of namespace `ns`.
    pub fn start(client: Client, flux: &str, ks: &str, ns: &str, rotation: &str) -> Recorder {
        let ks = Object::new(&client, flux, KUSTOMIZATION, ks);
        Recorder::record(ks, ns, rotation, see)
    }
}

/// What Kustomization `k` and rotation `r` show.
fn see(settled: Option<String>, k: &Value, r: &Value) -> Seen {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (stage, waiting) = stage(r);
    let healthy = condition(k, "Healthy");
    Seen {
        settled,
        ready: condition(k, "Ready"),
        healthy: (healthy.0, healthy.1),
        last_applied: text(&k["status"]["lastAppliedRevision"]),
        stage,
        waiting,
        kstatus: kstatus::verdict(r),
    }
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
    counts(seen.iter().map(|s| {
        format!(
            "{} ({}) -> kstatus {} ({}); Kustomization Ready={} ({}), Healthy={} ({})",
            shown(&s.stage),
            s.waiting,
            s.kstatus.0,
            s.kstatus.1,
            s.ready.0,
            s.ready.1,
            s.healthy.0,
            s.healthy.1
        )
    }))
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
