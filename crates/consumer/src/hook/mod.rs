//! The hook protocol (docs/hooks.md): for each step keyrotor POSTs one JSON
//! request to a hook and reads one JSON answer. This module is the
//! protocol's one home, beside [`crate::wire`]: the operator's client and
//! the reference hooks (crate keyrotor-hooks) share its names and rules, and
//! a hook written in Rust needs this crate alone.
//!
//! - [`request`]: what keyrotor asks ([`HookRequest`]), and the checks a
//!   hook makes before acting ([`HookRequest::check`]).
//! - [`answer`]: what a hook answers ([`HookAnswer`]), read the way keyrotor
//!   reads it ([`HookAnswer::parse`], [`HookAnswer::into_issued`]).
//!
//! Neither type shows key material in `Debug`, and both wipe the key they
//! hold when dropped (I4).

pub mod answer;
pub mod request;

pub use answer::{AnswerError, HookAnswer, Issued, MAX_ANSWER, MAX_KEY_ID, key_id_ok};
pub use request::{
    API_VERSION, HookRequest, Invalid, MAX_REQUEST, RequestError, Step, idempotency_key, sha256_ok,
};

#[cfg(test)]
mod tests;
