//! keyrotor: a Kubernetes operator that rotates API keys with zero failed requests.
//!
//! Layout: `api` (the CRD types and their validation), `rotation` (the pure
//! planner), `keys` (key generation and the redacting key type), `controller`
//! (the operator), `ops` (metrics, health, leader election), `run` (the
//! operator process), `consumer` (the reporter sidecar and the client library
//! for apps), `plugin` (`kubectl keyrotor`), `demo`, `testkit` (the in-memory
//! Kubernetes API, crate keyrotor-testkit, re-exported for the demo), `cli`.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod conditions;
pub mod consumer;
pub mod controller;
#[cfg(feature = "testkit")]
pub mod demo;
pub mod keys;
pub mod ops;
pub mod plugin;
pub mod rotation;
pub mod run;

#[cfg(feature = "testkit")]
pub use keyrotor_testkit as testkit;
