//! Helpers for a real control plane (tests/cluster/up), shared by the
//! end-to-end suite (tests/e2e) and the nudge bench (benches/nudge.rs).

pub mod argocd;
pub mod cluster;
pub mod flux;
pub mod git;
pub mod libraries;
pub mod objects;
pub mod procs;
pub mod realnode;
pub mod recorder;
pub mod scenario;
