//! The verifier hook protocol (docs/hooks.md): one JSON request per step,
//! POSTed by keyrotor, one JSON answer. Shared by the controller's client and
//! the reference Redis hook so both read the same names.

use serde::{Deserialize, Serialize};

/// `apiVersion` of every request; a hook refuses versions it does not know.
pub const API_VERSION: &str = "hooks.keyrotor.dev/v1";
/// Largest answer keyrotor reads; a longer one is a failed call.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Largest request a hook needs to read (a key is at most 1 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

/// What keyrotor asks. `key` is sent only with `stage`; `sha256` (hex
/// SHA-256 of the key, what verifiers compare with) with both, so a hook can
/// retire a version without ever being sent its key again.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub api_version: String,
    /// `stage` or `retire`.
    pub step: String,
    /// `<namespace>/<rotation>/v<version>/<step>`: the same for every retry
    /// of one step, so a repeated call must not act twice.
    pub idempotency_key: String,
    pub namespace: String,
    pub rotation: String,
    pub version: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl std::fmt::Debug for HookRequest {
    // Never the key, never the digest: a request is logged by its identity.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookRequest({})", self.idempotency_key)
    }
}

/// What a hook answers with HTTP 200: `done: true` once the external system
/// holds the result of the step (also when it already did: idempotency).
/// `message` is for people; keyrotor never copies it into status or logs.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct HookAnswer {
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn idempotency_key(namespace: &str, rotation: &str, version: u64, step: &str) -> String {
    format!("{namespace}/{rotation}/v{version}/{step}")
}
