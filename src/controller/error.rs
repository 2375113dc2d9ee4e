//! Controller errors. Each has a category: a short fixed word for metrics
//! labels and event reasons, never a formatted string (bounded cardinality).

use crate::keys::KeyError;

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
}

impl Error {
    /// Fixed label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => "server",
            Error::Kube(_) => "api",
            Error::Render(_) => "key-missing",
            Error::Key(_) => "key-generation",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace => "invalid-object",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
