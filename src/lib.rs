//! keyrotor: a Kubernetes operator that rotates API keys with zero failed requests.
#![forbid(unsafe_code)]

#[cfg(feature = "testkit")]
pub mod testkit;
