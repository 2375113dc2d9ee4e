//! Groundwork for `keyrotor hook postgres` (alternating users): a small
//! PostgreSQL client of its own ([`wire`], logging in with [`scram`]) and
//! the pure plan of which role gets which statement for each step
//! ([`plan`]). Not served as a hook yet.

pub mod plan;
pub mod scram;
pub mod wire;
