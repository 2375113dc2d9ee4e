//! The pure core: `plan(policy, observed, now) -> Plan`.
//!
//! No kube, tokio or I/O: the clock is a parameter and every input is plain
//! data, so property tests can drive it through thousands of histories.

pub mod duration;
pub mod invariants;
pub mod model;
mod plan;
mod restore;
pub mod schedule;

pub use model::*;
pub use plan::plan;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
