//! What `issue`, `stage` and `retire` do on the database: read both
//! roles' state, let [`super::plan`] decide, run its statements as the
//! admin role, and prove a staged password by logging in with it. One step
//! at a time (a lock), so a retried request that overlaps its own earlier
//! attempt finds that attempt's work done.

use std::sync::atomic::{AtomicBool, Ordering};

use hyper::StatusCode;
use keyrotor_consumer::hook::{HookRequest, Step};
use tokio::sync::Mutex;
use tracing::warn;
use zeroize::Zeroizing;

use super::PostgresHookArgs;
use super::plan::{self, Pair, PlanError, Retire, RoleName, Stage, Standing, State};
use super::wire::{self, Connection, Login};
use crate::Error;
use crate::server::{Answer, Done, Refusal, Steps, refuse};

/// Session settings that keep the admin's statements (which carry SCRAM
/// verifiers) out of the server log, whatever the server logs otherwise.
/// Each needs superuser or `GRANT SET ON PARAMETER` (PostgreSQL 15+).
const QUIET: &str = "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; \
                     SET log_min_duration_statement = -1; SET log_min_duration_sample = -1";

/// The hook's hold on two login roles of one PostgreSQL server.
pub struct Postgres {
    address: String,
    database: String,
    admin_user: String,
    admin_password: Zeroizing<String>,
    pair: Pair,
    issuer_secret: Option<Zeroizing<String>>,
    terminate_sessions: bool,
    /// One step at a time: each reads the roles' state, then changes it.
    lock: Mutex<()>,
    /// Whether the warning that statements may reach the log was given.
    warned: AtomicBool,
}

/// Why the hook is not ready, for its readiness answer and its start.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    /// PostgreSQL did not answer (yet): worth waiting for.
    #[error("{0}")]
    Unreachable(String),
    /// PostgreSQL answered, and the setup is wrong: someone must fix it.
    #[error("{0}")]
    Wrong(String),
}

impl Postgres {
    pub fn new(
        args: PostgresHookArgs,
        admin_password: Zeroizing<String>,
        issuer_secret: Option<Zeroizing<String>>,
    ) -> Result<Postgres, Error> {
        let [a, b] = args.roles.as_slice() else {
            return Err(Error::RoleCount(args.roles.len()));
        };
        let name = |n: &str| RoleName::new(n).map_err(Error::Roles);
        let pair = Pair::new(name(a)?, name(b)?, name(&args.group)?).map_err(Error::Roles)?;
        Ok(Postgres {
            address: args.postgres,
            database: args.database,
            admin_user: args.admin_user,
            admin_password,
            pair,
            issuer_secret,
            terminate_sessions: args.terminate_sessions,
            lock: Mutex::new(()),
            warned: AtomicBool::new(false),
        })
    }

    pub fn pair(&self) -> &Pair {
        &self.pair
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the hook can work: the admin logs in, both login roles
    /// exist and inherit the group's privileges.
    pub async fn check(&self) -> Result<(), Unready> {
        let classify = |e: wire::Error| {
            if lasting(&e) {
                Unready::Wrong(e.to_string())
            } else {
                Unready::Unreachable(e.to_string())
            }
        };
        let mut admin = self.connect().await.map_err(|e| match classify(e) {
            Unready::Wrong(e) => Unready::Wrong(format!(
                "the admin login as {} failed: {e}",
                self.admin_user
            )),
            unreachable => unreachable,
        })?;
        let answer = admin
            .query(&self.pair.state_query())
            .await
            .map_err(classify)?;
        admin.close().await;
        let state = self
            .pair
            .state(&answer)
            .map_err(|e| Unready::Wrong(e.to_string()))?;
        match state.0.iter().find(|r| !r.member) {
            Some(r) => Err(Unready::Wrong(
                PlanError::NotMember {
                    role: r.name.to_string(),
                    group: self.pair.group().to_string(),
                }
                .to_string(),
            )),
            None => Ok(()),
        }
    }

    /// The readiness answer: `Ok` when [`Postgres::check`] passes, else a
    /// short reason (no secret in it).
    pub async fn readiness(&self) -> Result<(), String> {
        self.check().await.map_err(|e| e.to_string())
    }

    /// An admin session whose statements stay out of the server log when
    /// the admin may say so; warns once when it may not.
    async fn connect(&self) -> Result<Connection, wire::Error> {
        let login = Login {
            user: self.admin_user.clone(),
            password: self.admin_password.clone(),
            database: self.database.clone(),
        };
        let mut c = Connection::login(&self.address, &login).await?;
        match c.query(QUIET).await {
            Ok(_) => {}
            Err(e @ wire::Error::Server { .. }) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    warn!(
                        error = %e,
                        "the admin role may not keep its statements out of the server log: \
                         with log_statement = ddl or all, PostgreSQL logs the SCRAM verifiers \
                         the hook sets (never a password); see docs/postgres.md"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        Ok(c)
    }

    async fn admin(&self) -> Result<Connection, Refusal> {
        self.connect().await.map_err(|e| {
            refuse(
                StatusCode::BAD_GATEWAY,
                format!("the hook's admin login as {} failed: {e}", self.admin_user),
            )
        })
    }

    /// Both roles' state, read on `admin`.
    async fn state(&self, admin: &mut Connection) -> Result<State, Refusal> {
        let answer =
            admin
                .query(&self.pair.state_query())
                .await
                .map_err(|e| match e.sqlstate() {
                    Some("42704") => refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                    _ => database(e),
                })?;
        self.pair.state(&answer).map_err(refused)
    }

    /// Logs in as `role` with `key` on a fresh connection: the proof that
    /// presenters of the version will get in.
    async fn logs_in(&self, role: &RoleName, key: &str) -> Result<(), wire::Error> {
        let login = Login {
            user: role.to_string(),
            password: Zeroizing::new(key.to_string()),
            database: self.database.clone(),
        };
        Connection::login(&self.address, &login)
            .await?
            .close()
            .await;
        Ok(())
    }

    /// Carries out a planned stage of `version` whose password is `key`.
    async fn carry_out(
        &self,
        mut admin: Connection,
        s: &Stage,
        key: &str,
        version: u64,
    ) -> Result<String, Refusal> {
        let role = &s.role;
        match s.standing {
            Standing::Held => {
                if self.logs_in(role, key).await.is_ok() {
                    admin.close().await;
                    return Ok(format!("version {version} was already staged on {role}"));
                }
                // Changed by hand since: set it again.
            }
            Standing::Foreign => {
                return match self.logs_in(role, key).await {
                    Ok(()) => {
                        admin.query(&s.mark).await.map_err(database)?;
                        admin.close().await;
                        Ok(format!(
                            "version {version} adopted on {role}: it logs in with this key already"
                        ))
                    }
                    Err(e) if e.sqlstate().is_some_and(|s| s.starts_with("28")) => {
                        admin.close().await;
                        Err(refused(PlanError::Foreign {
                            role: role.to_string(),
                        }))
                    }
                    Err(e) => Err(database(e)),
                };
            }
            Standing::Free | Standing::Replacing(_) => {}
        }
        admin
            .query(&s.sql)
            .await
            .map_err(|e| stage_failed(role, e))?;
        // Closed before the proof: a session shows its last statement in
        // pg_stat_activity for as long as it lives.
        admin.close().await;
        self.logs_in(role, key).await.map_err(|e| {
            refuse(
                StatusCode::BAD_GATEWAY,
                format!("the staged password does not log in as {role}: {e}"),
            )
        })?;
        Ok(match s.standing {
            Standing::Replacing(old) => {
                format!("version {version} staged on {role}, replacing version {old}")
            }
            _ => format!("version {version} staged on {role}"),
        })
    }

    async fn retire(&self, r: &HookRequest) -> Result<Done, Refusal> {
        let mut admin = self.admin().await?;
        let state = self.state(&mut admin).await?;
        let (role, mut message) =
            match plan::retire(&self.pair, &state, &r.uid, r.version, r.username.as_deref())
                .map_err(refused)?
            {
                Retire::Unknown => {
                    admin.close().await;
                    return Ok(
                        format!("no role holds version {}: nothing to retire", r.version).into(),
                    );
                }
                Retire::Done { role } => {
                    let m = format!("version {} was already retired on {role}", r.version);
                    (role, m)
                }
                Retire::Disable { role, sql } => {
                    admin.query(&sql).await.map_err(database)?;
                    let m = format!("version {} retired: {role} cannot log in", r.version);
                    (role, m)
                }
            };
        if self.terminate_sessions {
            let ended = admin
                .query(&plan::terminate_sessions(&role))
                .await
                .map_err(database)?;
            let n = ended
                .rows
                .iter()
                .filter(|row| row.first().and_then(|v| v.as_deref()) == Some("t"))
                .count();
            message.push_str(&format!("; {n} open session(s) ended"));
        }
        admin.close().await;
        Ok(message.into())
    }
}

impl Steps for Postgres {
    async fn step(&self, step: Step, r: &HookRequest) -> Answer {
        self.run(step, r).await.into()
    }

    async fn ready(&self) -> Result<(), String> {
        self.readiness().await
    }
}

impl Postgres {
    /// Carries out one step, one at a time.
    async fn run(&self, step: Step, r: &HookRequest) -> Result<Done, Refusal> {
        let _one_at_a_time = self.lock.lock().await;
        let username = r.username.as_deref();
        match step {
            Step::Issue => {
                let secret = self.issuer_secret.as_ref().ok_or_else(|| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "this hook does not issue keys (start it with --issuer-secret-file)",
                    )
                })?;
                let mut admin = self.admin().await?;
                let state = self.state(&mut admin).await?;
                let (s, key) = plan::issue(
                    &self.pair,
                    &state,
                    secret.as_bytes(),
                    &r.uid,
                    r.version,
                    username,
                    &salt()?,
                )
                .map_err(refused)?;
                let message = self.carry_out(admin, &s, &key, r.version).await?;
                Ok(Done {
                    message,
                    key: Some(key),
                })
            }
            Step::Stage => {
                // `check` made sure the key is there and matches sha256.
                let key = r.key.as_deref().unwrap_or_default();
                let mut admin = self.admin().await?;
                let state = self.state(&mut admin).await?;
                let s = plan::stage(
                    &self.pair,
                    &state,
                    &r.uid,
                    r.version,
                    username,
                    key,
                    &salt()?,
                )
                .map_err(refused)?;
                self.carry_out(admin, &s, key, r.version)
                    .await
                    .map(Done::from)
            }
            Step::Retire => self.retire(r).await,
        }
    }
}

/// A plan's refusal as an answer: 409 when the database's state forbids
/// the step, 422 when this hook cannot serve the request as configured.
fn refused(e: PlanError) -> Refusal {
    let code = match &e {
        PlanError::Stale { .. }
        | PlanError::Serving { .. }
        | PlanError::Retired { .. }
        | PlanError::Foreign { .. }
        | PlanError::Elsewhere { .. } => StatusCode::CONFLICT,
        PlanError::Uid(_) => StatusCode::BAD_REQUEST,
        PlanError::Malformed | PlanError::SameRoles => StatusCode::BAD_GATEWAY,
        PlanError::RoleName(_)
        | PlanError::Missing(_)
        | PlanError::NoUsername { .. }
        | PlanError::NotInPair { .. }
        | PlanError::NotMember { .. }
        | PlanError::Password(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    refuse(code, e.to_string())
}

/// A statement without a secret failed: the server's own words.
fn database(e: wire::Error) -> Refusal {
    refuse(StatusCode::BAD_GATEWAY, e.to_string())
}

/// The stage transaction failed. Its text holds a verifier, so only the
/// SQLSTATE is said: a server message may quote the statement.
fn stage_failed(role: &RoleName, e: wire::Error) -> Refusal {
    match e.sqlstate() {
        Some("42501") => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the admin role may not change {role} (SQLSTATE 42501): it needs CREATEROLE, \
                 and in PostgreSQL 16+ ADMIN OPTION on {role}"
            ),
        ),
        Some(state) => refuse(
            StatusCode::BAD_GATEWAY,
            format!("PostgreSQL refused to stage the password of {role} (SQLSTATE {state})"),
        ),
        None => database(e),
    }
}

/// An error that waiting will not cure: a refused login, an unsupported
/// login method, a missing database, role or privilege.
fn lasting(e: &wire::Error) -> bool {
    match e {
        wire::Error::Unsupported(_) | wire::Error::Scram(_) => true,
        wire::Error::Server { sqlstate, .. } => {
            ["28", "3D", "42"].iter().any(|c| sqlstate.starts_with(c))
        }
        _ => false,
    }
}

/// 16 random bytes from the kernel: a verifier's salt.
fn salt() -> Result<[u8; 16], Refusal> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no randomness: {e}"),
            )
        })?;
    Ok(bytes)
}
