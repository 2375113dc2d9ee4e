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
//!
//! The HTTP side is [`crate::server`]; this module holds the flags and the
//! steps, and [`resp`] the small Redis client they use.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper::StatusCode;
use keyrotor_consumer::hook::{HookRequest, Step};
use keyrotor_consumer::keys::digest_of;
use tokio::sync::Mutex;
use tracing::info;
use zeroize::Zeroizing;

use crate::Error;
use crate::auth::{Auth, AuthArgs, secret_file};
use crate::issue::{derive, issuer_secret};
use crate::server::{self, Answer, Done, Refusal, Steps, refuse, serve};

pub mod resp;

use resp::{Connection, Reply};

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
    #[command(flatten)]
    pub auth: AuthArgs,
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

/// The hook's hold on one Redis user.
struct Redis {
    args: RedisHookArgs,
    admin_password: Option<Zeroizing<String>>,
    issuer_secret: Option<Zeroizing<String>>,
    /// One change at a time: each step reads the passwords, then changes them.
    lock: Mutex<()>,
}

/// Serves until the process is stopped.
pub async fn main(args: RedisHookArgs) -> Result<(), Error> {
    let auth = Auth::new(&args.auth).await?;
    let admin_password = match &args.admin_password_file {
        Some(p) => Some(secret_file(p)?),
        None => std::env::var("REDIS_ADMIN_PASSWORD")
            .ok()
            .map(Zeroizing::new),
    };
    let issuer_secret = args
        .issuer_secret_file
        .as_deref()
        .map(issuer_secret)
        .transpose()?;
    let (listener, local) = server::bind(args.listen).await?;
    info!(address = %local, redis = %args.redis, user = %args.user, "redis hook listening");
    let redis = Redis {
        args,
        admin_password,
        issuer_secret,
        lock: Mutex::new(()),
    };
    serve(listener, auth, redis).await
}

impl Steps for Redis {
    async fn step(&self, step: Step, r: &HookRequest) -> Answer {
        self.carry_out(step, r).await.into()
    }

    /// Logs in as the admin user and pings: what every step needs first.
    async fn ready(&self) -> Result<(), String> {
        let mut redis = self.admin().await.map_err(|r| r.reason)?;
        ok(redis.call(&[b"PING"]).await).map_err(|r| r.reason)
    }
}

impl Redis {
    /// One step; every answer but done is a refusal (4xx) or a failure
    /// (502: Redis unreachable or refusing).
    async fn carry_out(&self, step: Step, r: &HookRequest) -> Result<Done, Refusal> {
        // A version named for another user (spec.usernames) is not this
        // hook's to touch: its presenters would log in as that user.
        if let Some(other) = r.username.as_deref().filter(|u| *u != self.args.user) {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!(
                    "this hook rotates the passwords of Redis user {}, not {other}; set spec.usernames to [{}] or leave it out",
                    self.args.user, self.args.user
                ),
            ));
        }
        match step {
            Step::Issue => {
                let secret = self.issuer_secret.as_ref().ok_or_else(|| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "this hook does not issue keys (start it with --issuer-secret-file)",
                    )
                })?;
                let key = derive(secret.as_bytes(), &r.uid, r.version);
                let sha = digest_of(key.as_bytes());
                let _one_at_a_time = self.lock.lock().await;
                self.accept(r, &key, &sha).await?;
                Ok(Done {
                    message: format!("version {} issued", r.version),
                    key: Some(key),
                })
            }
            Step::Stage => {
                // `check` made sure the key is there and matches sha256.
                let key = r.key.as_deref().unwrap_or_default();
                let _one_at_a_time = self.lock.lock().await;
                self.accept(r, key, &r.sha256).await.map(Done::from)
            }
            Step::Retire => {
                let _one_at_a_time = self.lock.lock().await;
                self.retire(r).await
            }
        }
    }

    /// Removes the version's password, unless it is gone already or is the
    /// user's only one.
    async fn retire(&self, r: &HookRequest) -> Result<Done, Refusal> {
        let sha = r.sha256.as_str();
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
