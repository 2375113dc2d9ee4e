//! The operator: a kube-runtime `Controller` over ApiKeyRotations that owns
//! their Secrets and watches the consumer pods and workloads they name.
//!
//! One reconcile is observe (I/O) → plan (pure, `crate::rotation`) → apply
//! (I/O) → status (I/O), each step handing its value to the next. Rooms:
//!
//! - [`steps`]: the reconcile steps, in pipeline order (`steps/mod.rs`).
//! - [`objects`]: pure builders and readers of the objects the steps
//!   handle — the Secrets keyrotor writes and how they read back
//!   (`render`), hand edits found (`repair`), rollout progress, what a pod
//!   spec references.
//! - [`memory`]: what the operator remembers between reconciles, one record
//!   per rotation.
//! - [`hook`]: the client of the rotation hooks (docs/hooks.md).
//! - [`watch`]: the watches that feed the caches and trigger reconciles,
//!   readiness, restarts after an API outage.
//! - [`reach`]: what every watched scope shares so a rotation reaches
//!   other namespaces — Namespaces (consent), the copies kept there, each
//!   scope's pod cache, routes between scopes' controllers.
//! - `cache` (the slim pod cache and rotation index the watches fill and the
//!   steps read), `context` (what every reconcile shares), `events`,
//!   `error`.

pub mod cache;
mod context;
mod error;
mod events;
pub mod hook;
mod memory;
pub mod objects;
mod reach;
mod steps;
mod watch;

pub use context::Context;
pub use error::{CATEGORIES as ERROR_CATEGORIES, Error};
pub use steps::{error_policy, reconcile};
pub use watch::{Config, run};
