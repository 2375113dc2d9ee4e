//! keyrotor's reference rotation hooks (docs/hooks.md): HTTP servers that
//! speak the hook protocol of [`keyrotor_consumer::hook`] for a system
//! whose credentials keyrotor rotates. The operator's binary runs them as
//! `keyrotor hook <name>`; this crate does not link the operator.
//!
//! - [`server`]: what every hook shares: the HTTP server, reading and
//!   checking a request, one step at a time per rotation, writing the
//!   answer (done, pending or refused), `/healthz` and `/readyz`.
//! - [`auth`]: telling keyrotor's calls from anyone else's (a token file
//!   listing one or more tokens, read again when it changes, or keyrotor's
//!   ServiceAccount tokens checked with a TokenReview).
//! - [`issue`]: passwords an issuer derives instead of storing.
//! - [`redis`]: `keyrotor hook redis`, for a Redis 7 ACL user.
//! - [`postgres`]: `keyrotor hook postgres`, for PostgreSQL passwords by
//!   alternating two login roles, with its own SCRAM client.
//! - [`check`]: `keyrotor hook check`, the conformance kit that drives
//!   any hook through the protocol and its faults.
//! - [`Error`]: why a hook could not start.
//!
//! A new hook is a new module beside [`redis`]: its flags (flattening
//! [`auth::AuthArgs`]), a [`server::Steps`] implementation that acts on
//! the external system and says whether it can reach it, and a `main` that
//! hands both to [`server::serve`].
#![forbid(unsafe_code)]

pub mod auth;
pub mod check;
mod error;
pub mod issue;
pub mod postgres;
pub mod redis;
pub mod server;
mod token_review;

pub use error::Error;
