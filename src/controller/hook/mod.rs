//! The operator's hook client (docs/hooks.md): the planner's
//! `Action::CallHook` steps and an issuer's `issue`, as apply runs them.
//! The protocol's types and checks are `keyrotor_consumer::hook`; this room
//! decides which hooks a step goes to and what each request carries, gets
//! the bearer token (`auth`) and makes the call (`http`).
//!
//! An answer is done, held (`hold`: pending or refused, which stop the plan
//! without failing it), or a failed call (`error`).
//!
//! To add a hook step: a [`Step`] in the protocol, the request it sends in
//! [`HookClient::call`] (or a method beside [`HookClient::issue`]), and the
//! action that asks for it in the planner.

mod auth;
mod error;
mod hold;
mod http;

use keyrotor_consumer::hook::{HookAnswer, HookRequest, Issued, Outcome, Step, clean_reason};
use kube::Client;
use tracing::{info, warn};

pub use error::{CallFailed, HookError};
pub use hold::{HoldKind, HookHold};
pub use http::{Endpoint, call};

use crate::api::HookEndpoint;
use crate::keys::SecretKey;
use crate::rotation::{HookStep, Version};

/// Which hook a call goes to: names it in errors and picks its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookRole {
    Verifier,
    Issuer,
}

impl HookRole {
    pub const ALL: [HookRole; 2] = [HookRole::Verifier, HookRole::Issuer];

    /// Its name in the spec, and in `status.hookRefusal.hook`.
    pub fn key(self) -> &'static str {
        match self {
            HookRole::Verifier => "verifierHook",
            HookRole::Issuer => "issuerHook",
        }
    }
    pub fn field(self) -> &'static str {
        match self {
            HookRole::Verifier => "spec.verifierHook",
            HookRole::Issuer => "spec.issuerHook",
        }
    }
    pub fn noun(self) -> &'static str {
        match self {
            HookRole::Verifier => "verifier hook",
            HookRole::Issuer => "issuer hook",
        }
    }
}

/// What the operator holds of a version a step names.
pub struct Held<'a> {
    /// The key, while its version Secret has it.
    pub key: Option<&'a SecretKey>,
    /// The hex SHA-256 verifiers compare with: of the key, or, once the key
    /// is gone, as the verifier Secret still holds it.
    pub sha256: Option<String>,
    /// The `keyId` the issuer gave the key.
    pub key_id: Option<&'a str>,
    /// The user name the version's Secret records (`spec.usernames`).
    pub username: Option<&'a str>,
}

/// One rotation's hooks, for one reconcile.
pub struct HookClient<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub rotation: &'a str,
    /// `metadata.uid` of the rotation.
    pub uid: &'a str,
    /// `spec.verifierHook`, when there is one.
    pub verifier: Option<&'a HookEndpoint>,
    /// `spec.issuerHook`, when there is one.
    pub issuer: Option<&'a HookEndpoint>,
    /// An answer that still stands (pending until its time, or a refusal
    /// until the spec or `keyrotor.dev/retry-hook` changes): the call it
    /// names is not made, and answers the same again.
    pub standing: Option<&'a HookHold>,
}

/// What a step came to: done (an issuer's with the key), or held by a
/// pending or refused answer.
#[derive(Debug)]
pub enum Answered<T> {
    Done(T),
    Held(HookHold),
}

/// Names a failed call the way the reconcile reports it.
fn failed(
    role: HookRole,
    step: &'static str,
    version: Version,
) -> impl Fn(HookError) -> CallFailed {
    move |source| CallFailed {
        role: role.noun(),
        step,
        version,
        source,
    }
}

impl HookClient<'_> {
    /// One planned step: `stage` goes to the verifier hook; `retire` to the
    /// verifier hook, then to the issuer, which revokes the key it minted.
    /// A hook removed from the spec since the plan is not called. A hook
    /// that holds the step (pending, refused) ends the call there.
    pub async fn call(
        &self,
        step: HookStep,
        version: Version,
        held: Held<'_>,
    ) -> Result<Answered<()>, CallFailed> {
        let (step, hooks) = match step {
            HookStep::Stage => (Step::Stage, vec![(HookRole::Verifier, self.verifier)]),
            HookStep::Retire => (
                Step::Retire,
                vec![
                    (HookRole::Verifier, self.verifier),
                    (HookRole::Issuer, self.issuer),
                ],
            ),
        };
        for (role, spec) in hooks {
            let Some(spec) = spec else { continue };
            let failed = failed(role, step.as_str(), version);
            if step == Step::Stage && held.key.is_none() {
                return Err(failed(HookError::KeyMissing));
            }
            // Without key or digest the hook cannot be told which version.
            let Some(sha256) = held.sha256.clone() else {
                warn!(
                    version,
                    hook = role.noun(),
                    "cannot name the version to the hook: its key and digest are gone"
                );
                continue;
            };
            let mut request = self.request(step, version);
            request.sha256 = sha256;
            request.username = held.username.map(str::to_string);
            if step == Step::Stage {
                request.key = held.key.map(|k| k.expose().to_string());
            }
            if role == HookRole::Issuer {
                request.key_id = held.key_id.map(str::to_string);
            }
            // The request wipes its copy of the key when dropped.
            if let Answered::Held(hold) = self
                .send(role, spec, (step, &request))
                .await
                .map_err(failed)?
            {
                return Ok(Answered::Held(hold));
            }
        }
        Ok(Answered::Done(()))
    }

    /// Asks the issuer for version `version`'s key, for user `username`
    /// when it carries one. A repeated idempotency key gets the same key
    /// back (the protocol's rule for issuers), so a retry after a lost
    /// answer or a crash never mints a second key for one version; the
    /// version Secret, created once, keeps what came first. A `204`
    /// carries no key: a failed call ("the issuer's answer has no key").
    pub async fn issue(
        &self,
        spec: &HookEndpoint,
        version: Version,
        username: Option<&str>,
    ) -> Result<Answered<Issued>, CallFailed> {
        let failed = failed(HookRole::Issuer, Step::Issue.as_str(), version);
        let mut request = self.request(Step::Issue, version);
        request.username = username.map(str::to_string);
        match self
            .send(HookRole::Issuer, spec, (Step::Issue, &request))
            .await
            .map_err(&failed)?
        {
            Answered::Done(answer) => answer
                .into_issued()
                .map(Answered::Done)
                .map_err(|e| failed(HookError::Answer(e))),
            Answered::Held(hold) => Ok(Answered::Held(hold)),
        }
    }

    fn request(&self, step: Step, version: Version) -> HookRequest {
        HookRequest::new(step, self.namespace, self.rotation, self.uid, version)
    }

    /// Makes one call, unless an answer for it still stands.
    async fn send(
        &self,
        role: HookRole,
        spec: &HookEndpoint,
        (step, request): (Step, &HookRequest),
    ) -> Result<Answered<HookAnswer>, HookError> {
        let version = request.version;
        if let Some(hold) = self.standing.filter(|h| h.names(role, step, version)) {
            return Ok(Answered::Held(hold.clone()));
        }
        let token = auth::bearer(self.client, self.namespace, role.field(), spec).await?;
        let endpoint = Endpoint {
            url: spec.url.clone(),
            ca_bundle: spec.ca_bundle.clone(),
            timeout: std::time::Duration::from_secs(spec.timeout_seconds.into()),
        };
        let (answer, reason) = match call(&endpoint, &token, request).await? {
            Outcome::Done(answer) => return Ok(Answered::Done(answer)),
            Outcome::Pending {
                retry_after,
                reason,
            } => (HoldKind::Pending { retry_after }, reason),
            Outcome::Refused { status, reason } => (HoldKind::Refused { status }, reason),
            // `call` reports a failed status as an error.
            Outcome::Failed(status) => return Err(HookError::Status(status, "")),
        };
        // A reason that repeats the step's key or digest is dropped whole.
        let secrets = [request.key.as_deref().unwrap_or_default(), &request.sha256];
        let hold = HookHold {
            role,
            step,
            version,
            answer,
            reason: clean_reason(reason.as_deref(), &secrets),
        };
        info!(hook = %request.idempotency_key, answer = ?hold.answer, reason = hold.reason.as_deref().unwrap_or_default(), "hook held the step");
        Ok(Answered::Held(hold))
    }
}
