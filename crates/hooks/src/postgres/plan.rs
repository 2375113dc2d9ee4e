//! Alternating users, pure: which of two login roles gets which statement
//! for each step, decided from the database's own state, so a restarted
//! hook needs no memory.
//!
//! PostgreSQL holds one password per role, so N-1 and N cannot both be
//! accepted by one role. Two login roles (say `app_a`, `app_b`), both
//! members of one group role that holds the privileges, take turns:
//!
//! - **stage vN** gives the role *not* serving vN-1 a fresh password and
//!   `LOGIN` in one `ALTER ROLE`, and marks it with vN in the same
//!   transaction; the hook then proves a login with that password.
//! - **retire vN-1** sets `NOLOGIN` on the role marked vN-1, and on nothing
//!   else: a role since re-marked for a newer version is never touched.
//! - **issue vN** (issuer role) is stage vN with the password derived from
//!   the rotation's uid and N ([`crate::issue::derive`]).
//!
//! **Where the state lives.** Each role's comment
//! (`COMMENT ON ROLE … IS 'keyrotor rotation <uid> version <N>'`, read with
//! `shobj_description`) says which version of which rotation last set its
//! password, and `rolcanlogin` says whether that version is still live.
//! The comment is written in the password's own transaction, so the two
//! can never disagree; it survives restarts of the hook and of PostgreSQL,
//! is readable by any role (`\du+` shows it), and needs no table, schema or
//! extension. The uid in it keeps a re-created rotation (a new uid, whose
//! versions start again) from mistaking an old mark for its own.
//!
//! **`NOLOGIN`, not a random password, to retire.** `rolcanlogin` is state
//! the hook can read back: a repeated retire sees it done, and a stage
//! sees which role is free. A random password would look exactly like a
//! live one in `pg_authid`, so a restarted hook could not tell a retired
//! role from a serving one; it would also be a secret generated only to be
//! thrown away. The old verifier stays on the disabled role, harmless:
//! the next stage on that role replaces it in the statement that turns
//! `LOGIN` back on, so a retired password never works again.
//!
//! **Open sessions.** PostgreSQL checks passwords and `rolcanlogin` at
//! connection time only: neither `NOLOGIN` nor a new password ends
//! sessions already open, so pooled connections of vN-1 keep working until
//! they close. That is what makes the switch gapless; whoever must cut
//! them runs [`terminate_sessions`] (needs `pg_signal_backend`).
//!
//! **Grants the user sets up once** (PostgreSQL 16 and later also need
//! the admin to hold `ADMIN OPTION` on both login roles):
//! ```sql
//! CREATE ROLE app NOLOGIN;                 -- holds the privileges
//! GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO app;
//! CREATE ROLE app_a NOLOGIN IN ROLE app;   -- inherits app's privileges
//! CREATE ROLE app_b NOLOGIN IN ROLE app;
//! CREATE ROLE keyrotor_admin LOGIN CREATEROLE PASSWORD '…';
//! ```
//! Objects the clients create should belong to `app`
//! (`ALTER DEFAULT PRIVILEGES FOR ROLE app_a, app_b …` or `SET ROLE app`),
//! so either login role can use them.

use zeroize::Zeroizing;

use super::scram::{ScramError, verifier};
use super::wire::Answer;

/// PBKDF2 iterations of the verifiers the hook sets (PostgreSQL's default).
pub const ITERATIONS: u32 = 4096;
const MARK_PREFIX: &str = "keyrotor rotation ";

/// Why no plan can be made; the hook answers with it (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{0:?} is not a role name keyrotor accepts (lowercase letters, digits, _; at most 63; not pg_*)"
    )]
    RoleName(String),
    #[error("{0:?} is not a Kubernetes uid")]
    Uid(String),
    #[error("the two login roles must differ")]
    SameRoles,
    #[error("role {0} does not exist")]
    Missing(String),
    #[error("the role state read from pg_roles is malformed")]
    Malformed,
    /// A newer version is already staged: staging this one would take its role.
    #[error("role {role} already holds version {newer}; version {version} is stale")]
    Stale {
        role: String,
        newer: u64,
        version: u64,
    },
    /// Both roles serve a live version: the older must be retired first.
    #[error("{a} (version {va}) and {b} (version {vb}) both still log in; retire one first")]
    BothLive {
        a: String,
        va: String,
        b: String,
        vb: String,
    },
    #[error(transparent)]
    Password(#[from] ScramError),
}

/// A login role's name, checked so it can be quoted without surprises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(String);

impl RoleName {
    pub fn new(name: &str) -> Result<RoleName, PlanError> {
        let ok = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with("pg_");
        ok.then(|| RoleName(name.to_string()))
            .ok_or_else(|| PlanError::RoleName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The two login roles that take turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair([RoleName; 2]);

impl Pair {
    pub fn new(a: RoleName, b: RoleName) -> Result<Pair, PlanError> {
        if a == b {
            return Err(PlanError::SameRoles);
        }
        Ok(Pair([a, b]))
    }

    /// The statement that reads both roles' state.
    pub fn state_query(&self) -> String {
        format!(
            "SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') \
             FROM pg_catalog.pg_roles WHERE rolname IN ({}, {})",
            literal(self.0[0].as_str()),
            literal(self.0[1].as_str())
        )
    }

    /// Both roles' state from the answer to [`Pair::state_query`].
    pub fn state(&self, answer: &Answer) -> Result<State, PlanError> {
        let read = |role: &RoleName| -> Result<RoleState, PlanError> {
            let row = answer
                .rows
                .iter()
                .find(|r| r.first().and_then(|n| n.as_deref()) == Some(role.as_str()))
                .ok_or_else(|| PlanError::Missing(role.as_str().to_string()))?;
            let can_login = match row.get(1).and_then(|v| v.as_deref()) {
                Some("t") => true,
                Some("f") => false,
                _ => return Err(PlanError::Malformed),
            };
            let mark = row.get(2).and_then(|c| c.as_deref()).and_then(Mark::parse);
            Ok(RoleState {
                name: role.clone(),
                can_login,
                mark,
            })
        };
        Ok(State([read(&self.0[0])?, read(&self.0[1])?]))
    }
}

/// Which version of which rotation last set a role's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub uid: String,
    pub version: u64,
}

impl Mark {
    /// `None` for a comment keyrotor did not write.
    pub fn parse(comment: &str) -> Option<Mark> {
        let (uid, version) = comment.strip_prefix(MARK_PREFIX)?.split_once(" version ")?;
        check_uid(uid).ok()?;
        let version = version.parse().ok().filter(|v| *v > 0)?;
        Some(Mark {
            uid: uid.to_string(),
            version,
        })
    }

    fn comment(&self) -> String {
        format!("{MARK_PREFIX}{} version {}", self.uid, self.version)
    }
}

/// One login role as `pg_roles` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub name: RoleName,
    pub can_login: bool,
    pub mark: Option<Mark>,
}

impl RoleState {
    /// The version of rotation `uid` this role holds.
    fn version_of(&self, uid: &str) -> Option<u64> {
        self.mark
            .as_ref()
            .filter(|m| m.uid == uid)
            .map(|m| m.version)
    }
}

/// Both login roles, in the order they were configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State(pub [RoleState; 2]);

/// What stage (or issue) vN does: `sql` on the admin connection, then a
/// login as `role` with the version's password to prove it.
pub struct Stage {
    /// The role presenters of vN log in as.
    pub role: RoleName,
    /// One transaction: password (as a SCRAM verifier), `LOGIN`, mark.
    pub sql: Zeroizing<String>,
    /// The role already held vN (a repeated step): the statement re-asserts it.
    pub repeated: bool,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("role", &self.role)
            .field("sql", &"<holds a password verifier>")
            .field("repeated", &self.repeated)
            .finish()
    }
}

/// Stage `version` of rotation `uid` with `password`; `salt` (16 random
/// bytes from the caller) goes into the verifier.
pub fn stage(
    state: &State,
    uid: &str,
    version: u64,
    password: &str,
    salt: &[u8],
) -> Result<Stage, PlanError> {
    check_uid(uid)?;
    let (target, repeated) = target(state, uid, version)?;
    let mark = Mark {
        uid: uid.to_string(),
        version,
    };
    let role = ident(target.as_str());
    let verifier = verifier(password, salt, ITERATIONS)?;
    // LOGIN and the new password in one statement: the role never logs in
    // with the password it held before (a retired version's).
    let sql = Zeroizing::new(format!(
        "BEGIN; ALTER ROLE {role} WITH LOGIN PASSWORD {} VALID UNTIL 'infinity'; \
         COMMENT ON ROLE {role} IS {}; COMMIT",
        literal(&verifier),
        literal(&mark.comment())
    ));
    Ok(Stage {
        role: target,
        sql,
        repeated,
    })
}

/// Which role vN goes to, and whether it is there already.
fn target(state: &State, uid: &str, version: u64) -> Result<(RoleName, bool), PlanError> {
    let [a, b] = &state.0;
    if let Some(r) = [a, b]
        .into_iter()
        .find(|r| r.version_of(uid) == Some(version))
    {
        return Ok((r.name.clone(), true));
    }
    if let Some((r, newer)) = [a, b]
        .into_iter()
        .filter_map(|r| Some((r, r.version_of(uid).filter(|v| *v > version)?)))
        .max_by_key(|(_, newer)| *newer)
    {
        return Err(PlanError::Stale {
            role: r.name.as_str().to_string(),
            newer,
            version,
        });
    }
    // A role still logging in serves something (vN-1, or a version from
    // before keyrotor): the other role is the free one.
    match (a.can_login, b.can_login) {
        (true, false) => Ok((b.name.clone(), false)),
        (false, true) => Ok((a.name.clone(), false)),
        (false, false) => Ok((a.name.clone(), false)),
        (true, true) => Err(PlanError::BothLive {
            a: a.name.as_str().to_string(),
            va: shown(a),
            b: b.name.as_str().to_string(),
            vb: shown(b),
        }),
    }
}

fn shown(r: &RoleState) -> String {
    r.mark
        .as_ref()
        .map_or_else(|| "unmarked".to_string(), |m| m.version.to_string())
}

/// What retire vN does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retire {
    /// `sql` disables the role that holds vN.
    Disable { role: RoleName, sql: String },
    /// The role holding vN already cannot log in (a repeated step).
    Done { role: RoleName },
    /// No role holds vN (never staged, or its role was reused for a newer
    /// version): nothing to do, and above all nothing to disable.
    Unknown,
}

/// Retire `version` of rotation `uid`.
pub fn retire(state: &State, uid: &str, version: u64) -> Result<Retire, PlanError> {
    check_uid(uid)?;
    let Some(r) = state.0.iter().find(|r| r.version_of(uid) == Some(version)) else {
        return Ok(Retire::Unknown);
    };
    Ok(if r.can_login {
        Retire::Disable {
            role: r.name.clone(),
            sql: format!("ALTER ROLE {} WITH NOLOGIN", ident(r.name.as_str())),
        }
    } else {
        Retire::Done {
            role: r.name.clone(),
        }
    })
}

/// Issue `version` (issuer role): stage it with the password derived from
/// `uid` and `version` under the issuer secret; the password to answer
/// with comes back beside the plan.
pub fn issue(
    state: &State,
    issuer_secret: &[u8],
    uid: &str,
    version: u64,
    salt: &[u8],
) -> Result<(Stage, Zeroizing<String>), PlanError> {
    let password = crate::issue::derive(issuer_secret, uid, version);
    Ok((stage(state, uid, version, &password, salt)?, password))
}

/// Ends every session `role` has open (what `NOLOGIN` does not do).
pub fn terminate_sessions(role: &RoleName) -> String {
    format!(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE usename = {}",
        literal(role.as_str())
    )
}

/// A Kubernetes uid: what may go in a mark.
fn check_uid(uid: &str) -> Result<(), PlanError> {
    let ok = (1..=64).contains(&uid.len())
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(())
        .ok_or_else(|| PlanError::Uid(uid.to_string()))
}

/// A quoted identifier: `"` doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal: `'` doubled, and `\` doubled under `E'…'` so the
/// literal reads the same whatever `standard_conforming_strings` says.
pub fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests;
