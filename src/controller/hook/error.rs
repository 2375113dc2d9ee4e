//! Why a hook call failed. Display says what failed and what to fix; no
//! variant carries a request or answer body (they hold key material, or may
//! echo it).

use std::time::Duration;

use keyrotor_consumer::hook::AnswerError;

/// Why one call to a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("url {0} cannot be used: {1}")]
    Url(String, &'static str),
    #[error("caBundle holds no usable PEM certificate: {0}")]
    CaBundle(String),
    #[error("cannot connect to {0}: {1}; check that the hook runs and that url points at it")]
    Connect(String, String),
    #[error("TLS with {0} failed: {1}; check caBundle and the hook's serving certificate")]
    Tls(String, String),
    #[error("no answer within {0:?}; the hook is slow or stuck (timeoutSeconds)")]
    Timeout(Duration),
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    #[error("the hook answered HTTP {0}{1}")]
    Status(u16, &'static str),
    /// The answer's body: too long, not `{"done": true}`, or an issuer's key
    /// keyrotor cannot store.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("token Secret {0}: {1}")]
    Token(String, String),
    #[error("{0}")]
    Identity(String),
    #[error("the version's key is missing from its Secret")]
    KeyMissing,
}

impl HookError {
    /// Worth retrying at once: the endpoint may answer on the next try.
    pub(super) fn transient(&self) -> bool {
        match self {
            HookError::Connect(..) | HookError::Timeout(_) | HookError::Http(_) => true,
            HookError::Status(code, _) => *code >= 500 || *code == 408 || *code == 429,
            _ => false,
        }
    }
}

/// A step a hook could not carry out, as the reconcile reports it.
#[derive(Debug, thiserror::Error)]
#[error("the {role} could not {step} version {version}: {source}")]
pub struct CallFailed {
    /// `verifier hook` or `issuer hook`.
    pub role: &'static str,
    pub step: &'static str,
    pub version: u64,
    #[source]
    pub source: HookError,
}
