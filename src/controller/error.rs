//! Controller errors. Each has a category: a short fixed word for metrics
//! labels and event reasons, never a formatted string (bounded cardinality).

use crate::keys::KeyError;

use super::hook::CallFailed;
use super::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot build a Secret: {0}")]
    Render(#[from] RenderError),
    #[error("cannot make a key: {0}")]
    Key(#[from] KeyError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the ApiKeyRotation has no namespace")]
    NoNamespace,
    /// A hook step failed: "the {role} could not {step} version {version}: …".
    #[error(transparent)]
    Hook(#[from] CallFailed),
}

impl Error {
    /// The error the reconcile itself hit, looking through the finalizer
    /// wrapper every reconcile result passes through.
    fn root(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.root(),
                _ => self,
            },
            _ => self,
        }
    }

    /// A 409 Conflict: the view this reconcile acted on was stale (a
    /// resourceVersion precondition failed, or the finalizer patch raced).
    pub fn is_conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code == 409,
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.is_conflict(),
                F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)) => {
                    s.code == 409
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Fixed label for metrics and logs: one of [`CATEGORIES`].
    pub fn category(&self) -> &'static str {
        if self.is_conflict() {
            return "conflict";
        }
        match self.root() {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => "server",
            Error::Kube(_) => "api",
            Error::Render(_) => "key-missing",
            Error::Key(_) => "key-generation",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace => "invalid-object",
            Error::Hook(_) => "hook",
        }
    }
}

/// Every word [`Error::category`] gives (the metrics start each at 0, so
/// the first error of a kind is an increase too).
pub const CATEGORIES: [&str; 10] = [
    "conflict",
    "throttled",
    "forbidden",
    "server",
    "api",
    "key-missing",
    "key-generation",
    "finalizer",
    "invalid-object",
    "hook",
];

pub type Result<T, E = Error> = std::result::Result<T, E>;
