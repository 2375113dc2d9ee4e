//! What keyrotor's test suites and benchmarks share, as one library (not
//! published): the controller-test [`harness`] on the in-memory API (the real
//! controller, the simulated [`kubelet`], the invariant [`observer`]), a
//! simulated kubelet Secret [`volume`], bounded waiting ([`eventually`]), the
//! real-cluster helpers of the end-to-end suite and the nudge bench ([`e2e`]),
//! the scale bench ([`bench`]), and the `keyrotor-sidecar` binary for other
//! packages' tests ([`binaries`]).
#![forbid(unsafe_code)]

pub mod bench;
pub mod binaries;
pub mod e2e;
pub mod eventually;
pub mod harness;
pub mod kubelet;
pub mod observer;
pub mod redis;
pub mod volume;

pub use eventually::{eventually, eventually_every};
