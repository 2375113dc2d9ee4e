//! Running keyrotor in production: metrics, leader election, and waiting for
//! the CRD. The admin server (`/metrics`, `/livez`, `/readyz`) and its
//! readiness are the sidecar crate's, shared with the verifier sidecar: one
//! HTTP stack for both binaries (see `keyrotor_sidecar::admin`).

pub mod crd;
pub mod lease;
pub mod metrics;

pub use keyrotor_sidecar::admin;
pub use keyrotor_sidecar::admin::Health;
pub use metrics::Metrics;
