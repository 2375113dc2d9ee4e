//! keyrotor's consumer side: what runs next to (or inside) the apps that use
//! a rotating key, without the operator's dependencies (no clap, prometheus
//! or HTTP server), so an app can depend on it alone.
//!
//! - [`wire`]: the contract between keyrotor and its consumers — labels,
//!   annotations, Secret files, field managers, and one codec per annotation
//!   value. Its one home in the code; docs/wire.md specifies it for every
//!   language.
//! - [`hook`]: the hook protocol (docs/hooks.md) — requests, answers and
//!   their checks, for the operator's client and for hooks written in Rust.
//! - [`keys`]: key generation and the redacting, zeroizing key type (I4).
//! - [`volume`]: reading a projected-Secret directory the way kubelet mounts it
//!   (files are symlinks into `..data`, which kubelet swaps atomically).
//! - [`store`]: the typed snapshot of one directory and a [`store::KeyStore`]
//!   that hot-reloads it.
//! - [`verifier`] and [`presenter`]: the client library for Rust apps.
//! - [`usage`]: when each version was last presented, reported coarsely to the
//!   pod's `last-seen` annotation for Traffic mode.
//! - [`pod`]: writing annotations on the process's own Pod.
//! - [`reload`]: background hot reload with revision reports, usage reports.
//! - [`reporter`]: the loop of the `keyrotor reporter` sidecar.
//! - [`handshake`]: the files through which a library tells that sidecar
//!   what its process loaded (docs/wire.md#the-handshake-directory).
//!
//! The file layout and the annotations are documented for every language in
//! docs/consumers.md; invariants (I1–I8) in docs/design.md#invariants.
#![forbid(unsafe_code)]

pub mod handshake;
pub mod hook;
pub mod keys;
pub mod pod;
pub mod presenter;
pub mod reload;
pub mod reporter;
pub mod store;
pub mod usage;
pub mod verifier;
pub mod volume;
pub mod wire;

pub use wire::Version;
