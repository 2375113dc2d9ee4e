//! `keyrotor hook redis`: the reference verifier hook, for a Redis 7 user
//! whose passwords keyrotor rotates. Redis holds several passwords per user,
//! which is exactly an accepted set: `stage` adds the version's password
//! (`ACL SETUSER <user> #<sha256>`, the same as `>password` but by digest),
//! tests it with `AUTH`, and answers; `retire` removes it
//! (`ACL SETUSER <user> !<sha256>`). Both steps read the user's passwords
//! first (`ACL GETUSER`), so a repeated call finds its work done and answers
//! `done` without acting twice: idempotent by state, across hook restarts.
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
    /// the rotation's `verifierHook.tokenSecretRef`).
    #[arg(long, env = "KEYROTOR_HOOK_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Run `ACL SAVE` after each change (Redis configured with an `aclfile`),
    /// so a Redis restart keeps the accepted passwords.
    #[arg(long, env = "REDIS_ACL_SAVE")]
    pub acl_save: bool,
}

struct Hook {
    args: RedisHookArgs,
    token: Zeroizing<String>,
    admin_password: Option<Zeroizing<String>>,
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
    let token = read(&args.token_file)?;
    if token.is_empty() {
        return Err(format!("{} is empty", args.token_file.display()));
    }
    let admin_password = match &args.admin_password_file {
        Some(p) => Some(read(p)?),
        None => std::env::var("REDIS_ADMIN_PASSWORD")
            .ok()
            .map(Zeroizing::new),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    info!(address = %local, redis = %args.redis, user = %args.user, "redis hook listening");
    let hook = Arc::new(Hook {
        args,
        token,
        admin_password,
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

fn refuse(code: StatusCode, msg: impl Into<String>) -> Refusal {
    Refusal(code, msg.into())
}

impl Hook {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (code, answer) = match self.handle(req).await {
            Ok(message) => (
                StatusCode::OK,
                HookAnswer {
                    done: true,
                    message: Some(message),
                },
            ),
            Err(Refusal(code, message)) => {
                warn!(status = code.as_u16(), %message, "hook request refused");
                (
                    code,
                    HookAnswer {
                        done: false,
                        message: Some(message),
                    },
                )
            }
        };
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        Response::builder()
            .status(code)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<String, Refusal> {
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
        if !same(presented.as_bytes(), self.token.as_bytes()) {
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

    async fn step(&self, r: &HookRequest, key: Option<&str>) -> Result<String, Refusal> {
        if r.api_version != API_VERSION {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("apiVersion must be {API_VERSION}"),
            ));
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
        let mut redis = self.admin().await?;
        let passwords = self.passwords(&mut redis).await?;
        let user = self.args.user.as_bytes();
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
                let added = !passwords.iter().any(|p| p == sha);
                if added {
                    let rule = format!("#{sha}");
                    ok(redis
                        .call(&[b"ACL", b"SETUSER", user, rule.as_bytes()])
                        .await)?;
                    self.save(&mut redis).await?;
                }
                // The test step: the new password logs in before keyrotor is told.
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
            "retire" => {
                if !passwords.iter().any(|p| p == sha) {
                    return Ok(format!("version {} was already retired", r.version));
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
                Ok(format!("version {} retired", r.version))
            }
            _ => Err(refuse(
                StatusCode::BAD_REQUEST,
                "step must be stage or retire",
            )),
        }
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
