//! API keys: generation from the OS CSPRNG, the formats secret scanners
//! recognise (prefix + random part + checksum), and [`SecretKey`], the only type
//! that holds key material. It redacts itself in `Debug`/`Display`, has no
//! `Serialize`, and zeroizes its bytes on drop (I4).

mod checksum;
mod format;

pub use format::{Alphabet, KeySpec};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Key material. Read it only through [`SecretKey::expose`], at the point where
/// it is written into a Secret or compared.
pub struct SecretKey(Zeroizing<String>);

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("the adopted key is {0}")]
    Adopted(&'static str),
}

impl SecretKey {
    /// A fresh key in `spec`'s format, from the OS CSPRNG.
    pub fn generate(spec: &KeySpec) -> Result<SecretKey, KeyError> {
        format::generate(spec).map(SecretKey)
    }

    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;
    /// Longest key accepted, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Wraps an existing key (adoption). Must be printable ASCII, 16–1024 bytes,
    /// so it can travel in headers and files unchanged.
    pub fn adopt(bytes: Vec<u8>) -> Result<SecretKey, KeyError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::Adopted("shorter than 16 bytes"));
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(KeyError::Adopted("longer than 1024 bytes"));
        }
        if !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::Adopted("not printable ASCII without spaces"));
        }
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| KeyError::Adopted("not UTF-8"))?;
        Ok(SecretKey(Zeroizing::new(text)))
    }

    /// The key itself. Every call site is a place key material leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sha256:` + 32 hex digits over a domain-separated hash: identifies the key
    /// in status and events, and is not the digest verifiers compare against.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"keyrotor fingerprint v1\0");
        h.update(self.0.as_bytes());
        format!("sha256:{}", &hex(&h.finalize())[..32])
    }

    /// Hex SHA-256 of the key: what the verifier Secret holds by default.
    pub fn digest(&self) -> String {
        digest_of(self.0.as_bytes())
    }
}

/// Hex SHA-256 of presented bytes, to compare with a verifier digest.
pub fn digest_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether a key carries a valid checksum for `spec` (scanners and clients can
/// reject a mistyped key without a round trip).
pub fn checksum_ok(spec: &KeySpec, key: &str) -> bool {
    format::checksum_ok(spec, key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint())
    }
}

impl std::fmt::Display for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted key>")
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey(self.0.clone())
    }
}

#[cfg(test)]
mod tests;
