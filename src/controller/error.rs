//! Controller errors. Each has a [`Category`]: a short fixed word for
//! metrics labels and logs, never a formatted string (bounded cardinality).

use crate::keys::KeyError;

use super::hook::CallFailed;
use super::objects::render::RenderError;

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
    /// The copies in other namespaces are not listed yet: a deletion that
    /// went on now could leave some behind.
    #[error("the copies in other namespaces are not listed yet")]
    CopiesNotListed,
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

    /// Fixed label for metrics and logs.
    pub fn category(&self) -> &'static str {
        self.kind().as_str()
    }

    /// What kind of failure this is: what decides the retry and the label.
    pub fn kind(&self) -> Category {
        if self.is_conflict() {
            return Category::Conflict;
        }
        match self.root() {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => Category::Conflict,
            Error::Kube(kube::Error::Api(s)) if s.code == 429 => Category::Throttled,
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => Category::Forbidden,
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => Category::Server,
            Error::Kube(_) => Category::Api,
            Error::Render(_) => Category::KeyMissing,
            Error::Key(_) => Category::KeyGeneration,
            Error::Finalizer(_) => Category::Finalizer,
            Error::NoNamespace => Category::InvalidObject,
            Error::CopiesNotListed => Category::Starting,
            Error::Hook(_) => Category::Hook,
        }
    }
}

/// Declares [`Category`] with its label words and the list of them all, from
/// one table: a new kind is labelled and counted from 0 once it is named here.
macro_rules! categories {
    ($($(#[$doc:meta])* $kind:ident => $label:literal,)*) => {
        /// The kinds of reconcile failure, each with a short fixed label for
        /// metrics and logs (bounded cardinality: never a formatted string).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Category {
            $($(#[$doc])* $kind,)*
        }

        impl Category {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Category::$kind => $label,)*
                }
            }
        }

        /// Every label [`Error::category`] gives (the metrics start each at
        /// 0, so the first error of a kind is an increase too).
        pub const CATEGORIES: &[&str] = &[$($label,)*];
    };
}

categories! {
    /// 409: the view was stale; re-read soon.
    Conflict => "conflict",
    /// 429: the API server asks to slow down.
    Throttled => "throttled",
    /// 403: RBAC lacks a permission.
    Forbidden => "forbidden",
    /// 5xx: the API server failed.
    Server => "server",
    /// Any other API failure (connection, timeout, decoding).
    Api => "api",
    /// A key a Secret should hold is gone.
    KeyMissing => "key-missing",
    /// A key could not be generated.
    KeyGeneration => "key-generation",
    /// The finalizer could not be added or removed.
    Finalizer => "finalizer",
    /// The object itself is unusable (no namespace).
    InvalidObject => "invalid-object",
    /// A rotation hook failed.
    Hook => "hook",
    /// A cache the step needs has not listed yet.
    Starting => "starting",
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_is_counted_and_labels_are_distinct() {
        let labels: std::collections::BTreeSet<&str> = CATEGORIES.iter().copied().collect();
        assert_eq!(labels.len(), CATEGORIES.len());
        assert!(CATEGORIES.contains(&Error::NoNamespace.category()));
        assert_eq!(Error::NoNamespace.kind(), Category::InvalidObject);
    }
}
