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

pub use answer::{
    AnswerError, DEFAULT_RETRY_AFTER, HookAnswer, Issued, MAX_ANSWER, MAX_KEY_ID, MAX_REASON,
    Outcome, RETRY_AFTER_RANGE, clean_reason, key_id_ok,
};
pub use request::{
    API_VERSION, HookRequest, Invalid, MAX_REQUEST, MAX_USERNAME, RequestError, Step,
    idempotency_key, sha256_ok, username_ok,
};

#[cfg(test)]
mod tests;
