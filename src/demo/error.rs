//! Why the demo stopped: the in-memory API refused a write, the rotation
//! did not progress in time, or keyrotor rejected requests (a failed demo).
//! Errors name versions and counts, never a key (I4).

use crate::keys::KeyError;

/// Why `keyrotor demo` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The in-memory API refused a read or write.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// A simulated pod's manifest did not build.
    #[error("{0}")]
    Manifest(#[from] serde_json::Error),
    /// The naive strategy could not generate its key.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The rotation did not reach the awaited state within `secs`.
    #[error("the demo did not progress within {secs} s")]
    Stalled { secs: u64 },
    /// keyrotor rejected requests: the demo's claim failed.
    #[error("keyrotor rejected {0} requests")]
    Rejected(u64),
}
