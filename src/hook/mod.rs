//! Verifier hooks: the protocol keyrotor speaks to an external verifier
//! (`protocol`), and the reference hook for Redis 7 ACLs (`redis`, run as
//! `keyrotor hook redis`) with its small RESP client (`resp`), and the
//! TokenReview check for hooks that accept keyrotor's ServiceAccount
//! tokens (`token_review`).

pub mod protocol;
pub mod redis;
pub mod resp;
mod token_review;
