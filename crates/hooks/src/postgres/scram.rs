//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: the
//! client's side of a login, and the verifier `ALTER ROLE … PASSWORD`
//! accepts in place of a password, so a password never reaches the server
//! (nor its statement log) in clear. Pure: the caller brings the nonce and
//! salt. No channel binding (`n,,`): the hook's connection is plain TCP.
//!
//! Passwords are used as their UTF-8 bytes. PostgreSQL runs SASLprep on
//! them, which leaves printable ASCII unchanged (keyrotor's passwords are
//! base64url); a password SASLprep would alter is refused.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::issue::hmac_sha256;

/// Fewest and most PBKDF2 iterations accepted from a server: RFC 7677's
/// floor, and a ceiling so a hostile server cannot make a login spin.
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 1_000_000;

/// Why a SCRAM exchange failed; nothing here holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("SCRAM: the server's message is malformed ({0})")]
    Malformed(&'static str),
    #[error("SCRAM: the server's nonce does not extend ours")]
    Nonce,
    #[error("SCRAM: {0} iterations is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("SCRAM: the server's signature is wrong (not the server holding this password)")]
    ServerSignature,
    #[error("SCRAM: the server refused: {0}")]
    Refused(String),
    #[error("SCRAM: the password is not printable ASCII")]
    Password,
}

/// One login in progress: built with the client nonce, fed the server's
/// two messages in turn.
pub struct Scram {
    password: Zeroizing<Vec<u8>>,
    client_first_bare: String,
    nonce: String,
    /// After the server's first message: the signature its final must hold.
    server_signature: Option<[u8; 32]>,
}

impl std::fmt::Debug for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scram").finish_non_exhaustive()
    }
}

impl Scram {
    /// `user` is empty for PostgreSQL (it takes the startup message's).
    pub fn new(user: &str, password: &str, nonce: &str) -> Result<Scram, ScramError> {
        check_password(password)?;
        Ok(Scram {
            password: Zeroizing::new(password.as_bytes().to_vec()),
            client_first_bare: format!("n={},r={nonce}", escape_name(user)),
            nonce: nonce.to_string(),
            server_signature: None,
        })
    }

    /// The client-first-message (no channel binding).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Reads the server-first-message; answers the client-final-message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, ScramError> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => {
                    salt = Some(base64_decode(v).ok_or(ScramError::Malformed("salt"))?)
                }
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                Some(("e=", v)) => return Err(ScramError::Refused(v.to_string())),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        let salt = salt.ok_or(ScramError::Malformed("no salt"))?;
        let iterations = iterations.ok_or(ScramError::Malformed("no iteration count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let keys = Keys::new(&self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac_sha256(&keys.stored[..], auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client
            .iter()
            .zip(client_signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        self.server_signature = Some(*hmac_sha256(&keys.server[..], auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", base64_encode(&proof)))
    }

    /// Checks the server-final-message: only the server that holds this
    /// password's verifier can sign it.
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(ScramError::Refused(e.to_string()));
        }
        let said = server_final
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .and_then(base64_decode)
            .ok_or(ScramError::Malformed("no verifier"))?;
        match self.server_signature {
            Some(expected) if said == expected => Ok(()),
            _ => Err(ScramError::ServerSignature),
        }
    }
}

/// The verifier PostgreSQL stores for `password`
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`): what
/// `ALTER ROLE … PASSWORD` is given instead of the password. It lets no
/// one log in, but it allows guessing offline, so it is kept as secret.
pub fn verifier(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Zeroizing<String>, ScramError> {
    check_password(password)?;
    let keys = Keys::new(password.as_bytes(), salt, iterations);
    Ok(Zeroizing::new(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        base64_encode(salt),
        base64_encode(&keys.stored[..]),
        base64_encode(&keys.server[..])
    )))
}

struct Keys {
    client: Zeroizing<[u8; 32]>,
    stored: Zeroizing<[u8; 32]>,
    server: Zeroizing<[u8; 32]>,
}

impl Keys {
    fn new(password: &[u8], salt: &[u8], iterations: u32) -> Keys {
        let salted = pbkdf2_sha256(password, salt, iterations);
        let client = hmac_sha256(&salted[..], b"Client Key");
        let mut stored = Zeroizing::new([0u8; 32]);
        stored.copy_from_slice(&Sha256::digest(&client[..]));
        Keys {
            client,
            stored,
            server: hmac_sha256(&salted[..], b"Server Key"),
        }
    }
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256, one 32-byte block: SCRAM's Hi().
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut first = Zeroizing::new(salt.to_vec());
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &first);
    let mut out = u.clone();
    for _ in 1..iterations {
        u = hmac_sha256(password, &u[..]);
        out.iter_mut().zip(u.iter()).for_each(|(o, b)| *o ^= b);
    }
    out
}

/// SASLprep leaves printable ASCII as it is; anything else could differ
/// between this client and the server, so it is refused rather than guessed.
fn check_password(password: &str) -> Result<(), ScramError> {
    if password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err(ScramError::Password)
    }
}

/// RFC 5802's `saslname`: `,` and `=` escaped.
fn escape_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as SCRAM uses.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`base64_encode`]; `None` for anything not canonical-length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk[..4 - pad].iter().enumerate() {
            let v = BASE64.iter().position(|&x| x == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn a_login_matches_rfc_7677_test_vector() {
        let mut s = Scram::new("user", "pencil", CLIENT_NONCE).unwrap();
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            s.client_final(SERVER_FIRST).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            s.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
    }

    #[test]
    fn a_server_that_does_not_hold_the_password_is_caught_by_its_signature() {
        let mut s = Scram::new("user", "pencil", CLIENT_NONCE).unwrap();
        s.client_final(SERVER_FIRST).unwrap();
        assert_eq!(
            s.verify("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError::ServerSignature)
        );
        let unasked = Scram::new("user", "pencil", CLIENT_NONCE).unwrap();
        assert_eq!(
            unasked.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::ServerSignature),
            "no signature is right before the server's first message"
        );
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_or_a_cheap_iteration_count_is_refused() {
        let mut s = Scram::new("", "pencil", CLIENT_NONCE).unwrap();
        assert_eq!(
            s.client_final("r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            s.client_final("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1"),
            Err(ScramError::Iterations(1))
        );
    }

    #[test]
    fn the_verifier_holds_the_keys_behind_rfc_7677s_proof_and_signature() {
        let salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier("pencil", &salt, 4096).unwrap();
        assert!(
            v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{}",
            *v
        );
        let (_, keys) = v.rsplit_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let (stored, server) = (
            base64_decode(stored).unwrap(),
            base64_decode(server).unwrap(),
        );
        let auth = format!(
            "n=user,r={CLIENT_NONCE},{SERVER_FIRST},c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        // A server holding this verifier signs as the RFC's server did ...
        assert_eq!(
            base64_encode(&hmac_sha256(&server, auth.as_bytes())[..]),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // ... and accepts the RFC's proof: proof XOR HMAC(StoredKey) is a
        // ClientKey whose SHA-256 is StoredKey.
        let proof = base64_decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").unwrap();
        let signature = hmac_sha256(&stored, auth.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(signature.iter())
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(Sha256::digest(&client_key)[..], stored[..]);
        assert_ne!(*verifier("pencil", b"another-salt", 4096).unwrap(), *v);
    }

    #[test]
    fn a_password_saslprep_could_change_is_refused() {
        assert_eq!(
            Scram::new("", "pässword", "n").err(),
            Some(ScramError::Password)
        );
        assert_eq!(
            verifier("tab\there", b"salt", 4096).err(),
            Some(ScramError::Password)
        );
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", &[0xff, 0xfe, 0x00]] {
            assert_eq!(base64_decode(&base64_encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), None);
        assert_eq!(base64_decode("Z!8="), None);
    }

    #[test]
    fn debug_shows_no_password() {
        let s = Scram::new("user", "pencil", CLIENT_NONCE).unwrap();
        assert!(!format!("{s:?}").contains("pencil"));
    }
}
