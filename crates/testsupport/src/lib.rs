//! What keyrotor's test suites and benchmarks share, as one library (not
//! published): the controller-test [`harness`] on the in-memory API (the real
//! controller, the simulated [`kubelet`], the invariant [`observer`]), a
//! simulated kubelet Secret [`volume`], bounded waiting ([`eventually`]), a
//! real Redis ([`redis`]) and PostgreSQL ([`postgres`]) on loopback, the
//! real-cluster helpers of the end-to-end suite and the benches ([`e2e`]),
//! the gateways the verifier endpoint runs behind, as the examples configure
//! them ([`gateways`]), kstatus's verdict on an object ([`kstatus`]),
//! and the `keyrotor-sidecar` binary for other packages' tests
//! ([`binaries`]). The scale bench's own code is the keyrotor-benchsupport
//! crate.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod e2e;
pub mod eventually;
pub mod gateways;
pub mod harness;
pub mod http1;
pub mod kstatus;
pub mod kubelet;
pub mod observer;
pub mod postgres;
pub mod redis;
pub mod volume;

pub use eventually::{eventually, eventually_every, listening};
