//! Verifier hooks: the protocol keyrotor speaks to an external verifier
//! (`protocol`), and the reference hook for Redis 7 ACLs (`redis`, run as
//! `keyrotor hook redis`) with its small RESP client (`resp`).

pub mod protocol;
pub mod redis;
pub mod resp;
