//! keyrotor: a Kubernetes operator that rotates API keys with zero failed requests.
//!
//! Layout: `api` (the CRD types and their validation), `rotation` (the pure
//! planner), `controller` (the operator: observe → plan → apply → status),
//! `ops` (metrics, health, leader election), `run` (the operator process),
//! `plugin` (`kubectl keyrotor`), `demo`, `cli`, `testkit` (the in-memory
//! Kubernetes API, crate keyrotor-testkit, re-exported for the demo), and
//! `sample_app` (with `testkit`: a tiny service for tests). The wire
//! contract, the hook protocol, the key type and the client library live in
//! the `keyrotor-consumer` crate (re-exported here as `wire`, `keys` and
//! `consumer`), so apps and hooks can use them without the operator's
//! dependencies; the sidecars (`keyrotor reporter`, `keyrotor verifier`),
//! the admin server and `logging` in `keyrotor-sidecar`, so consumer pods
//! run them without the operator; the reference hooks (`keyrotor hook
//! redis`) in `keyrotor-hooks`. The design: docs/design.md.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod conditions;
pub mod controller;
#[cfg(feature = "testkit")]
pub mod demo;
pub mod ops;
pub mod plugin;
pub mod rotation;
pub mod run;
#[cfg(feature = "testkit")]
pub mod sample_app;

pub use keyrotor_consumer as consumer;
pub use keyrotor_consumer::{keys, wire};
pub use keyrotor_sidecar::logging;

#[cfg(feature = "testkit")]
pub use keyrotor_testkit as testkit;
