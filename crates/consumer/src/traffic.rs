//! The traffic annotation's codec, [`Traffic`], lives in [`crate::wire`]
//! with the other annotation values; this path stays for existing callers.

pub use crate::wire::Traffic;
