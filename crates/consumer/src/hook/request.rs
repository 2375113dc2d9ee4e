//! What keyrotor asks a hook: one [`HookRequest`] per step, and the rules a
//! hook checks before it acts on one.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::digest_of;

/// `apiVersion` of every request; a hook refuses versions it does not know.
pub const API_VERSION: &str = "hooks.keyrotor.dev/v1";
/// Largest request a hook needs to read (a key is at most 1 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

/// The steps of this protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// To an issuer: mint version N's key and answer with it.
    Issue,
    /// To a verifier: accept version N's key (sent with the request).
    Stage,
    /// To both: stop accepting version N (named by its digest and keyId).
    Retire,
}

impl Step {
    pub const ALL: [Step; 3] = [Step::Issue, Step::Stage, Step::Retire];

    /// The `step` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Issue => "issue",
            Step::Stage => "stage",
            Step::Retire => "retire",
        }
    }

    /// The step a `step` field names, if this protocol version has it.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What keyrotor asks. `key` is sent only with `stage`; `sha256` (hex
/// SHA-256 of the key, what verifiers compare with) with `stage` and
/// `retire`, so a hook can retire a version without ever being sent its key
/// again. `issue` carries neither: the issuer answers with the key.
///
/// `step` stays a string so that a hook can read, and refuse by name, a
/// step of a newer protocol version; [`HookRequest::check`] reads it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub api_version: String,
    /// `issue`, `stage` or `retire` ([`Step`]).
    pub step: String,
    /// `<namespace>/<rotation>/<uid>/v<version>/<step>`: the same for every
    /// retry of one step and different for every other step, also across a
    /// rotation deleted and created again (a new `uid`). A hook that stores
    /// results keys them by this alone.
    pub idempotency_key: String,
    pub namespace: String,
    pub rotation: String,
    /// The ApiKeyRotation's `metadata.uid`: tells a re-created rotation of
    /// the same name (whose versions start again at 1) from the old one.
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
    /// The user name the version is for (`spec.usernames`), in every step
    /// of a version that has one: the account whose password this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// `<namespace>/<rotation>/<uid>/v<version>/<step>`.
pub fn idempotency_key(
    namespace: &str,
    rotation: &str,
    uid: &str,
    version: u64,
    step: &str,
) -> String {
    format!("{namespace}/{rotation}/{uid}/v{version}/{step}")
}

/// Longest user name a version may carry (PostgreSQL's limit for a role).
pub const MAX_USERNAME: usize = 63;

/// Whether `name` can be a version's user name: 1–[`MAX_USERNAME`] bytes of
/// printable ASCII without spaces (the wire's `username` file, the CRD's
/// `spec.usernames` allow a subset of this).
pub fn username_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_USERNAME && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `sha256` has the shape of a key's digest: 64 lowercase hex digits.
pub fn sha256_ok(sha256: &str) -> bool {
    sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("a hook request is at most {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("not a hook request")]
    Malformed,
}

/// Why a hook must refuse a request it read (HTTP 400). Display is the
/// message for people; it never holds the key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("apiVersion must be {API_VERSION}")]
    ApiVersion,
    #[error("step must be issue, stage or retire")]
    Step,
    #[error("every request needs the rotation's uid")]
    NoUid,
    #[error("username must be 1–63 bytes of printable ASCII without spaces")]
    Username,
    #[error("sha256 must be 64 lowercase hex digits")]
    Sha256,
    #[error("stage needs the key")]
    NoKey,
    #[error("sha256 does not match the key")]
    KeyMismatch,
}

impl HookRequest {
    /// A request for `step` of `version` with its identity filled in and
    /// neither digest nor key: the caller adds what the step carries.
    pub fn new(step: Step, namespace: &str, rotation: &str, uid: &str, version: u64) -> Self {
        HookRequest {
            api_version: API_VERSION.into(),
            step: step.as_str().into(),
            idempotency_key: idempotency_key(namespace, rotation, uid, version, step.as_str()),
            namespace: namespace.into(),
            rotation: rotation.into(),
            uid: uid.into(),
            version,
            sha256: String::new(),
            key: None,
            key_id: None,
            username: None,
        }
    }

    /// Reads a request as a hook receives it: at most [`MAX_REQUEST`] bytes
    /// of JSON of this shape. What it asks is checked by [`Self::check`].
    pub fn parse(body: &[u8]) -> Result<HookRequest, RequestError> {
        if body.len() > MAX_REQUEST {
            return Err(RequestError::TooLarge);
        }
        serde_json::from_slice(body).map_err(|_| RequestError::Malformed)
    }

    /// The JSON body keyrotor sends, in a buffer wiped when dropped (a
    /// `stage` request holds the key).
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        // Serializing strings and numbers into a Vec cannot fail.
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }

    /// What a hook checks before acting: this protocol version, a known
    /// step, the rotation's uid, a well-formed user name if any, and what
    /// the step must carry (`stage`: the key and its digest; `retire`: the
    /// digest).
    pub fn check(&self) -> Result<Step, Invalid> {
        if self.api_version != API_VERSION {
            return Err(Invalid::ApiVersion);
        }
        let step = Step::from_name(&self.step).ok_or(Invalid::Step)?;
        if self.uid.is_empty() {
            return Err(Invalid::NoUid);
        }
        if self.username.as_deref().is_some_and(|u| !username_ok(u)) {
            return Err(Invalid::Username);
        }
        match step {
            Step::Issue => return Ok(step),
            Step::Stage | Step::Retire if !sha256_ok(&self.sha256) => {
                return Err(Invalid::Sha256);
            }
            Step::Stage | Step::Retire => {}
        }
        if step == Step::Stage {
            let key = self.key.as_deref().ok_or(Invalid::NoKey)?;
            if digest_of(key.as_bytes()) != self.sha256 {
                return Err(Invalid::KeyMismatch);
            }
        }
        Ok(step)
    }
}

impl Drop for HookRequest {
    fn drop(&mut self) {
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
    }
}

impl std::fmt::Debug for HookRequest {
    // Never the key, never the digest: a request is logged by its identity.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookRequest({})", self.idempotency_key)
    }
}
