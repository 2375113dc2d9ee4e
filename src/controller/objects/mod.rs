//! Pure builders and readers of the Kubernetes objects the reconcile steps
//! handle: no I/O, no clock, no client.
//!
//! - [`render`]: the Secrets keyrotor writes, and what they say read back.
//! - [`repair`]: hand edits found — keys to restore from projections,
//!   projections to rewrite from what consumers were given.
//! - [`rollout`]: whether a workload's rollout has finished.
//! - [`pods`]: which Secrets a pod spec references; label selectors.
//! - [`material`]: the key material and raw Secrets one reconcile read.
//! - [`targets`]: where a rotation's Secrets go beyond its namespace, and
//!   whether each namespace agreed; [`copy`]: the copies kept there.

pub mod copy;
pub mod material;
pub mod pods;
pub mod render;
pub mod repair;
pub mod rollout;
pub mod targets;
