//! `keyrotor hook redis`: the reference verifier hook, for a Redis 7 user
//! whose passwords keyrotor rotates. Redis holds several passwords per user,
//! which is exactly an accepted set: `stage` adds the version's password
//! (`ACL SETUSER <user> #<sha256>`, the same as `>password` but by digest),
//! tests it with `AUTH`, and answers; `retire` removes it
//! (`ACL SETUSER <user> !<sha256>`). Both steps read the user's passwords
//! first (`ACL GETUSER`), so a repeated call finds its work done and answers
//! `done` without acting twice: idempotent by state, across hook restarts.
//!
//! With `--issuer-secret-file` it is an issuer too (`spec.issuerHook`):
//! `issue` mints the version's password, adds it like `stage` and answers
//! with it. The password is derived (HMAC-SHA256 of the rotation's uid and
//! version under the issuer secret), so a repeated `issue` answers the same
//! password without the hook storing any, and a re-created rotation of the
//! same name (a new uid) gets new ones.
//!
//! Secrets (the admin password, the token keyrotor sends, keys) come from
//! files or the environment, never flags, and are never logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::protocol::{API_VERSION, HookAnswer, HookRequest, MAX_REQUEST};
use super::resp::{Connection, Reply};

/// Connections served at once (more wait in the kernel's backlog).
const MAX_CONNECTIONS: usize = 256;

#[derive(clap::Args, Debug, Clone)]
pub struct RedisHookArgs {
    /// Address to serve the hook on (loopback or the pod's address).
    #[arg(long, env = "KEYROTOR_HOOK_LISTEN", default_value = "127.0.0.1:9380")]
    pub listen: SocketAddr,
    /// Redis server, host:port.
    #[arg(long, env = "REDIS_ADDRESS", default_value = "127.0.0.1:6379")]
    pub redis: String,
    /// The ACL user whose passwords are rotated (it must exist).
    #[arg(long, env = "REDIS_USER")]
    pub user: String,
    /// The user the hook logs in as to change ACLs (needs `+acl`).
    #[arg(long, env = "REDIS_ADMIN_USER", default_value = "default")]
    pub admin_user: String,
    /// File holding that user's password; else REDIS_ADMIN_PASSWORD, else none.
    #[arg(long, env = "REDIS_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// File holding the bearer token keyrotor must send (the Secret named by
    /// the rotation's `tokenSecretRef`). Or `--token-review-audience`.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_TOKEN_FILE",
        required_unless_present = "token_review_audience"
    )]
    pub token_file: Option<PathBuf>,
    /// Accept keyrotor's ServiceAccount tokens of this audience instead
    /// (`serviceAccountToken.audience`), checked with a TokenReview.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_TOKEN_AUDIENCE",
        conflicts_with = "token_file"
    )]
    pub token_review_audience: Option<String>,
    /// NAMESPACE/NAME of a ServiceAccount whose tokens are accepted (repeat
    /// for several); with `--token-review-audience`.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_ALLOW_SERVICE_ACCOUNT",
        value_delimiter = ','
    )]
    pub allow_service_account: Vec<String>,
    /// Run `ACL SAVE` after each change (Redis configured with an `aclfile`),
    /// so a Redis restart keeps the accepted passwords.
    #[arg(long, env = "REDIS_ACL_SAVE")]
    pub acl_save: bool,
    /// File holding the secret (at least 32 bytes) issued passwords are
    /// derived from; without it the hook refuses `issue`. Whoever reads it
    /// can derive every issued password: mount it like the admin password.
    #[arg(long, env = "KEYROTOR_HOOK_ISSUER_SECRET_FILE")]
    pub issuer_secret_file: Option<PathBuf>,
}

/// How the hook tells keyrotor's calls from anyone else's.
enum Auth {
    Token(Zeroizing<String>),
    Review(Box<super::token_review::Reviewer>),
}

struct Hook {
    args: RedisHookArgs,
    auth: Auth,
    admin_password: Option<Zeroizing<String>>,
    issuer_secret: Option<Zeroizing<String>>,
    /// One change at a time: each step reads the passwords, then changes them.
    lock: Mutex<()>,
}

/// Serves until the process is stopped.
pub async fn main(args: RedisHookArgs) -> Result<(), String> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p)
            .map(|s| Zeroizing::new(s.trim().to_string()))
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let auth = match (&args.token_file, &args.token_review_audience) {
        (Some(file), _) => {
            let token = read(file)?;
            if token.is_empty() {
                return Err(format!("{} is empty", file.display()));
            }
            Auth::Token(token)
        }
        (None, Some(audience)) => Auth::Review(Box::new(
            super::token_review::Reviewer::new(audience.clone(), &args.allow_service_account)
                .await?,
        )),
        (None, None) => return Err("set --token-file or --token-review-audience".into()),
    };
    let admin_password = match &args.admin_password_file {
        Some(p) => Some(read(p)?),
        None => std::env::var("REDIS_ADMIN_PASSWORD")
            .ok()
            .map(Zeroizing::new),
    };
    let issuer_secret = match &args.issuer_secret_file {
        Some(p) => {
            let secret = read(p)?;
            if secret.len() < 32 {
                return Err(format!(
                    "{} must hold at least 32 bytes of secret",
                    p.display()
                ));
            }
            Some(secret)
        }
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    info!(address = %local, redis = %args.redis, user = %args.user, "redis hook listening");
    let hook = Arc::new(Hook {
        args,
        auth,
        admin_password,
        issuer_secret,
        lock: Mutex::new(()),
    });
    // Bounded like the gateway endpoint: any pod may connect before it
    // authenticates, so headers get 5 s and connections are capped.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let hook = hook.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let hook = hook.clone();
                async move { Ok::<_, std::convert::Infallible>(hook.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// A refusal: the status and a message for people (never a secret).
struct Refusal(StatusCode, String);

/// A step done: a message for people and, for `issue`, the password.
struct Done {
    message: String,
    key: Option<Zeroizing<String>>,
}

impl From<String> for Done {
    fn from(message: String) -> Done {
        Done { message, key: None }
    }
}

fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
    Refusal(code, msg.into())
}

impl Hook {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (code, answer) = match self.handle(req).await {
            Ok(done) => (
                StatusCode::OK,
                HookAnswer {
                    done: true,
                    message: Some(done.message),
                    key: done.key.map(|k| k.to_string()),
                    key_id: None,
                },
            ),
            Err(Refusal(code, message)) => {
                warn!(status = code.as_u16(), %message, "hook request refused");
                (
                    code,
                    HookAnswer {
                        done: false,
                        message: Some(message),
                        key: None,
                        key_id: None,
                    },
                )
            }
        };
        // The answer may hold an issued password: only `Bytes` leaves here.
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        drop(answer);
        Response::builder()
            .status(code)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Done, Refusal> {
        if req.method() != hyper::Method::POST {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST a hook request",
            ));
        }
        let presented = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let accepted = match &self.auth {
            Auth::Token(token) => same(presented.as_bytes(), token.as_bytes()),
            Auth::Review(reviewer) => !presented.is_empty() && reviewer.accepts(presented).await,
        };
        if !accepted {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "bearer token not accepted",
            ));
        }
        let body = Limited::new(req.into_body(), MAX_REQUEST)
            .collect()
            .await
            .map_err(|_| {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request too large or cut off",
                )
            })?
            .to_bytes();
        let body = Zeroizing::new(body.to_vec());
        let mut request: HookRequest = serde_json::from_slice(&body)
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "not a hook request"))?;
        // The key lives in a zeroizing string from here on.
        let key = request.key.take().map(Zeroizing::new);
        let result = self
            .step(&request, key.as_deref().map(String::as_str))
            .await;
        if result.is_ok() {
            info!(request = %request.idempotency_key, "done");
        }
        result
    }

    async fn step(&self, r: &HookRequest, key: Option<&str>) -> Result<Done, Refusal> {
        if r.api_version != API_VERSION {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("apiVersion must be {API_VERSION}"),
            ));
        }
        if r.step == "issue" {
            let secret = self.issuer_secret.as_ref().ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "this hook does not issue keys (start it with --issuer-secret-file)",
                )
            })?;
            if r.uid.is_empty() {
                return Err(refuse(StatusCode::BAD_REQUEST, "issue needs the uid"));
            }
            let key = derive(secret.as_bytes(), &r.uid, r.version);
            let sha = hex(&Sha256::digest(key.as_bytes()));
            let _one_at_a_time = self.lock.lock().await;
            self.accept(r, &key, &sha).await?;
            return Ok(Done {
                message: format!("version {} issued", r.version),
                key: Some(key),
            });
        }
        let sha = r.sha256.as_str();
        if sha.len() != 64
            || !sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "sha256 must be 64 lowercase hex digits",
            ));
        }
        let _one_at_a_time = self.lock.lock().await;
        match r.step.as_str() {
            "stage" => {
                let key =
                    key.ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "stage needs the key"))?;
                if hex(&Sha256::digest(key.as_bytes())) != sha {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "sha256 does not match the key",
                    ));
                }
                self.accept(r, key, sha).await.map(Done::from)
            }
            "retire" => {
                let mut redis = self.admin().await?;
                let passwords = self.passwords(&mut redis).await?;
                let user = self.args.user.as_bytes();
                if !passwords.iter().any(|p| p == sha) {
                    return Ok(format!("version {} was already retired", r.version).into());
                }
                if passwords.len() == 1 {
                    return Err(refuse(
                        StatusCode::CONFLICT,
                        "refusing to remove the user's only password; keyrotor stages the next one first",
                    ));
                }
                let rule = format!("!{sha}");
                ok(redis
                    .call(&[b"ACL", b"SETUSER", user, rule.as_bytes()])
                    .await)?;
                self.save(&mut redis).await?;
                Ok(format!("version {} retired", r.version).into())
            }
            _ => Err(refuse(
                StatusCode::BAD_REQUEST,
                "step must be issue, stage or retire",
            )),
        }
    }

    /// Adds `key` (digest `sha`) to the user's passwords unless it is there
    /// already, then logs in with it: the test step, before keyrotor is told.
    async fn accept(&self, r: &HookRequest, key: &str, sha: &str) -> Result<String, Refusal> {
        let mut redis = self.admin().await?;
        let passwords = self.passwords(&mut redis).await?;
        let user = self.args.user.as_bytes();
        let added = !passwords.iter().any(|p| p == sha);
        if added {
            let rule = format!("#{sha}");
            ok(redis
                .call(&[b"ACL", b"SETUSER", user, rule.as_bytes()])
                .await)?;
            self.save(&mut redis).await?;
        }
        let mut probe = Connection::connect(&self.args.redis)
            .await
            .map_err(unreachable)?;
        ok(probe.call(&[b"AUTH", user, key.as_bytes()]).await).map_err(|_| {
            refuse(
                StatusCode::BAD_GATEWAY,
                "the staged password does not log in (is the user on?)",
            )
        })?;
        Ok(if added {
            format!("version {} accepted", r.version)
        } else {
            format!("version {} was already accepted", r.version)
        })
    }

    /// A connection logged in as the admin user.
    async fn admin(&self) -> Result<Connection, Refusal> {
        let mut c = Connection::connect(&self.args.redis)
            .await
            .map_err(unreachable)?;
        if let Some(p) = &self.admin_password {
            ok(
                c.call(&[b"AUTH", self.args.admin_user.as_bytes(), p.as_bytes()])
                    .await,
            )
            .map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "the hook's admin login to Redis failed",
                )
            })?;
        }
        Ok(c)
    }

    /// The user's password digests (`ACL GETUSER`'s `passwords` field).
    async fn passwords(&self, c: &mut Connection) -> Result<Vec<String>, Refusal> {
        let reply = c
            .call(&[b"ACL", b"GETUSER", self.args.user.as_bytes()])
            .await
            .map_err(unreachable)?;
        let fields = match reply {
            Reply::Array(Some(f)) => f,
            Reply::Array(None) | Reply::Bulk(None) => {
                return Err(refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "Redis user {:?} does not exist; create it (ACL SETUSER) first",
                        self.args.user
                    ),
                ));
            }
            Reply::Error(e) => return Err(redis_error(&e)),
            _ => {
                return Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    "unexpected ACL GETUSER reply",
                ));
            }
        };
        let mut it = fields.into_iter();
        while let Some(name) = it.next() {
            let value = it.next();
            if name.text().as_deref() == Some("passwords") {
                return Ok(match value {
                    Some(Reply::Array(Some(items))) => {
                        items.iter().filter_map(Reply::text).collect()
                    }
                    _ => Vec::new(),
                });
            }
        }
        Err(refuse(
            StatusCode::BAD_GATEWAY,
            "ACL GETUSER reply has no passwords",
        ))
    }

    async fn save(&self, c: &mut Connection) -> Result<(), Refusal> {
        if self.args.acl_save {
            ok(c.call(&[b"ACL", b"SAVE"]).await)?;
        }
        Ok(())
    }
}

fn ok(reply: std::io::Result<Reply>) -> Result<(), Refusal> {
    match reply.map_err(unreachable)? {
        Reply::Error(e) => Err(redis_error(&e)),
        _ => Ok(()),
    }
}

fn unreachable(e: std::io::Error) -> Refusal {
    refuse(StatusCode::BAD_GATEWAY, format!("Redis unreachable: {e}"))
}

/// A Redis error reply, by its code word only: an argument could be echoed
/// after it.
fn redis_error(e: &str) -> Refusal {
    let code = e.split_whitespace().next().unwrap_or("ERR");
    refuse(StatusCode::BAD_GATEWAY, format!("Redis answered {code}"))
}

/// Constant-time comparison of the presented token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The password of `version` of the rotation with `uid`: base64url (no
/// padding) of HMAC-SHA256(secret, "keyrotor-issue/v1\0" uid "\0" version),
/// 43 characters, 256 bits.
fn derive(secret: &[u8], uid: &str, version: u64) -> Zeroizing<String> {
    let message = format!("keyrotor-issue/v1\0{uid}\0{version}");
    let mac = hmac_sha256(secret, message.as_bytes());
    Zeroizing::new(base64url(&mac[..]))
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(secret: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
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
