//! keyrotor's binaries as a user runs them, one test binary: the offline
//! commands, `kubectl keyrotor`, `keyrotor run` and `keyrotor sample-app` as
//! processes, `keyrotor-sidecar verifier` (and `keyrotor verifier`) as
//! gateways call it, the gateways' configurations as the docs show them,
//! the demo shortened, the reporter admission policy's CEL, and the scale
//! bench on ten rotations. Kept in the main package: the
//! tests spawn `CARGO_BIN_EXE_keyrotor` and `CARGO_BIN_EXE_kubectl-keyrotor`,
//! and the sidecar through `keyrotor_testsupport::binaries`.

mod bench;
mod commands;
mod demo;
mod gateways;
mod monitoring;
mod plugin;
mod promql;
mod reporter_policy;
mod run_binary;
mod sample_app;
mod verifier;
