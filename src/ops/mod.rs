//! Running keyrotor in production: metrics, health, the admin server, leader
//! election, and waiting for the CRD.

pub mod admin;
pub mod crd;
pub mod health;
pub mod lease;
pub mod metrics;

pub use health::Health;
pub use metrics::Metrics;
