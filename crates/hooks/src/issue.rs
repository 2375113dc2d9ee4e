//! Passwords an issuer hook derives instead of storing: version N's
//! password is an HMAC of the rotation's uid and N under the issuer secret,
//! so a repeated `issue` answers the same password without the hook keeping
//! any, and a re-created rotation of the same name (a new uid) gets new
//! ones.

use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::auth::secret_file;

/// The issuer secret from `path`: at least 32 bytes, or an error naming
/// the file. Whoever reads it can derive every issued password.
pub fn issuer_secret(path: &Path) -> Result<Zeroizing<String>, Error> {
    let secret = secret_file(path)?;
    if secret.len() < 32 {
        return Err(Error::ShortSecret(path.to_path_buf()));
    }
    Ok(secret)
}

/// The password of `version` of the rotation with `uid`: base64url (no
/// padding) of HMAC-SHA256(secret, "keyrotor-issue/v1\0" uid "\0" version),
/// 43 characters, 256 bits.
pub fn derive(secret: &[u8], uid: &str, version: u64) -> Zeroizing<String> {
    let message = format!("keyrotor-issue/v1\0{uid}\0{version}");
    let mac = hmac_sha256(secret, message.as_bytes());
    Zeroizing::new(base64url(&mac[..]))
}

/// HMAC (RFC 2104) over SHA-256.
pub(crate) fn hmac_sha256(secret: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut block = Zeroizing::new([0u8; 64]);
    if secret.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    let pad = |byte: u8| {
        let mut p = Zeroizing::new([0u8; 64]);
        for (o, k) in p.iter_mut().zip(block.iter()) {
            *o = k ^ byte;
        }
        p
    };
    let inner = Sha256::new()
        .chain_update(&pad(0x36)[..])
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&pad(0x5c)[..])
        .chain_update(inner)
        .finalize();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&outer);
    out
}

/// Base64url without padding (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(CHARS[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_short_issuer_secret_is_refused_naming_the_file_not_its_content() {
        let path = std::env::temp_dir().join(format!("keyrotor-issuer-{}", std::process::id()));
        std::fs::write(&path, "short-secret-value").unwrap();
        let said = issuer_secret(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            said,
            format!("{} must hold at least 32 bytes of secret", path.display())
        );
        assert!(!said.contains("short-secret-value"), "{said}");
    }

    #[test]
    fn an_unreadable_secret_file_is_named() {
        let path = std::env::temp_dir().join("keyrotor-no-such-secret-file");
        let said = secret_file(&path).unwrap_err().to_string();
        assert!(
            said.starts_with(&format!("cannot read {}: ", path.display())),
            "{said}"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac[..]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base64url_without_padding() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn issued_passwords_depend_on_uid_and_version_only() {
        let s = b"0123456789abcdef0123456789abcdef";
        let a = derive(s, "uid-1", 7);
        assert_eq!(a.len(), 43);
        assert_eq!(*a, *derive(s, "uid-1", 7), "a repeated issue: the same key");
        assert_ne!(*a, *derive(s, "uid-1", 8));
        assert_ne!(*a, *derive(s, "uid-2", 7), "a re-created rotation");
    }
}
