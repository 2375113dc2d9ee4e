//! The consumer side: what runs next to (or inside) the apps that use a key.
//!
//! - [`volume`]: reading a projected-Secret directory the way kubelet mounts it
//!   (files are symlinks into `..data`, which kubelet swaps atomically).
//! - [`keys`]: the typed snapshot of one directory and a [`keys::KeyStore`]
//!   that hot-reloads it.
//! - [`verifier`] and [`presenter`]: the client library for Rust apps.
//! - [`usage`]: when each version was last presented, reported coarsely to the
//!   pod's `last-seen` annotation for Traffic mode.
//! - [`pod`]: writing annotations on the process's own Pod.
//! - [`reload`]: background hot reload with revision reports, usage reports.
//! - [`reporter`]: the `keyrotor reporter` sidecar.
//! - [`sample_app`]: `keyrotor sample-app`, the library in a tiny service.
//!
//! The file layout and the annotations are documented for every language in
//! docs/consumers.md.

pub mod keys;
pub mod pod;
pub mod presenter;
pub mod reload;
pub mod reporter;
pub mod sample_app;
pub mod usage;
pub mod verifier;
pub mod volume;

/// Field manager of the revision reports (sidecar and library).
pub const REPORTER_MANAGER: &str = "keyrotor-reporter";
/// Field manager of the `last-seen` usage reports.
pub const USAGE_MANAGER: &str = "keyrotor-usage";

/// A version number, as in the projected files.
pub type Version = u64;
