//! The hook protocol (docs/hooks.md): one JSON request per step, POSTed by
//! keyrotor, one JSON answer. Shared by the controller's client and the
//! reference Redis hook so both read the same names.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// `apiVersion` of every request; a hook refuses versions it does not know.
pub const API_VERSION: &str = "hooks.keyrotor.dev/v1";
/// Largest answer keyrotor reads; a longer one is a failed call.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Largest request a hook needs to read (a key is at most 1 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;
/// Longest `keyId` an issuer may return (it is stored as an annotation).
pub const MAX_KEY_ID: usize = 253;

/// What keyrotor asks. `key` is sent only with `stage`; `sha256` (hex
/// SHA-256 of the key, what verifiers compare with) with `stage` and
/// `retire`, so a hook can retire a version without ever being sent its key
/// again. `issue` carries neither: the issuer answers with the key.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub api_version: String,
    /// `issue`, `stage` or `retire`.
    pub step: String,
    /// `<namespace>/<rotation>/v<version>/<step>`: the same for every retry
    /// of one step, so a repeated call must not act twice.
    pub idempotency_key: String,
    pub namespace: String,
    pub rotation: String,
    /// The ApiKeyRotation's `metadata.uid`: tells a re-created rotation of
    /// the same name (whose idempotency keys repeat) from the old one.
    #[serde(default)]
    pub uid: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `retire` to an issuer: the id its `issue` answer gave the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl std::fmt::Debug for HookRequest {
    // Never the key, never the digest: a request is logged by its identity.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookRequest({})", self.idempotency_key)
    }
}

/// What a hook answers with HTTP 200: `done: true` once the external system
/// holds the result of the step (also when it already did: idempotency).
/// An issuer's answer to `issue` carries the new `key` (the same one for a
/// repeated idempotency key) and optionally its `keyId`. `message` is for
/// people; keyrotor never copies it into status or logs.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HookAnswer {
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Drop for HookAnswer {
    fn drop(&mut self) {
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
    }
}

impl std::fmt::Debug for HookAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookAnswer")
            .field("done", &self.done)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_id", &self.key_id)
            .finish()
    }
}

pub fn idempotency_key(namespace: &str, rotation: &str, version: u64, step: &str) -> String {
    format!("{namespace}/{rotation}/v{version}/{step}")
}

/// Whether an issuer's `keyId` can be stored and sent back: printable ASCII
/// without spaces, at most [`MAX_KEY_ID`] bytes.
pub fn key_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_material() {
        let a = HookAnswer {
            done: true,
            key: Some("s3cr3t-issued-key-material".into()),
            key_id: Some("key_123".into()),
            message: None,
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("key_123"));
    }

    #[test]
    fn key_ids_are_short_printable_words() {
        assert!(key_id_ok("ak_01HZX"));
        assert!(!key_id_ok(""));
        assert!(!key_id_ok("has space"));
        assert!(!key_id_ok(&"x".repeat(MAX_KEY_ID + 1)));
    }
}
