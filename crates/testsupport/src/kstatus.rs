//! kstatus's verdict on a custom resource, by the rules of Flux's kstatus
//! (github.com/fluxcd/cli-utils pkg/kstatus/status, `Compute` for a kind
//! with no rules of its own): Terminating while deleted; InProgress while
//! `status.observedGeneration` differs from `metadata.generation`; then
//! InProgress on `Reconciling=True`, Failed on `Stalled=True`; then Ready
//! (True: Current, otherwise InProgress); with none of these, Current. Flux's
//! `wait: true` and health checks wait for Current and fail on Failed. The
//! controller tests check keyrotor's status against these rules; the Flux
//! scenario records them beside what the real kustomize-controller did.

use serde_json::Value;

/// (status, reason): Current, InProgress, Failed or Terminating, and the
/// condition reason (or rule) that decided it.
pub fn verdict(obj: &Value) -> (&'static str, String) {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return ("Terminating", "deletionTimestamp".into());
    }
    let status = &obj["status"];
    if let Some(observed) = status["observedGeneration"].as_i64()
        && Some(observed) != obj["metadata"]["generation"].as_i64()
    {
        return ("InProgress", "LatestGenerationNotObserved".into());
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c["type"] == t);
    let reason = |c: &Value| c["reason"].as_str().unwrap_or_default().to_string();
    for c in &conditions {
        if c["type"] == "Reconciling" && c["status"] == "True" {
            return ("InProgress", reason(c));
        }
        if c["type"] == "Stalled" && c["status"] == "True" {
            return ("Failed", reason(c));
        }
    }
    match find("Ready") {
        Some(c) if c["status"] == "True" => ("Current", reason(c)),
        Some(c) => ("InProgress", reason(c)),
        None => ("Current", "no Ready condition".into()),
    }
}
