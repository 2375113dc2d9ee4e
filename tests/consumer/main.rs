//! The consumer side, one test binary: the client library for apps and the
//! reporter (`keyrotor-sidecar reporter`, `keyrotor reporter`), each on a
//! simulated kubelet Secret volume (keyrotor-testsupport) and the in-memory
//! API.

mod library;
mod reporter;
