//! Groundwork for `keyrotor hook postgres` (alternating users): a small
//! PostgreSQL client of its own ([`wire`], logging in with [`scram`]).
//! The pure plan of which role gets which statement for each step comes
//! next. Not served as a hook yet.

pub mod scram;
pub mod wire;
