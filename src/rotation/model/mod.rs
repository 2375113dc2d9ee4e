//! The planner's vocabulary: the validated policy, what was observed in the
//! cluster, what keyrotor remembers in status, and the plan it returns.
//! Plain data: no kube, no I/O, no key material (only fingerprints).
//!
//! `policy` holds the inputs from the spec, `observed` what the cluster and
//! status show, `output` the plan and the report for status.

mod observed;
mod output;
mod policy;

pub use observed::*;
pub use output::*;
pub use policy::*;

/// A key version number. One number is one key, forever (I5).
pub type Version = u64;
/// The revision of a projected Secret; grows by one on every content change.
pub type Revision = u64;
