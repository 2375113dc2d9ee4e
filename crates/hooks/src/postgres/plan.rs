//! Alternating users, pure: what each step does to the login role the
//! request names, checked against the database's own state, so a restarted
//! hook needs no memory.
//!
//! PostgreSQL holds one password per role, so N-1 and N cannot both be
//! accepted by one role. Two login roles (say `app_a`, `app_b`), both
//! members of one group role that holds the privileges, take turns;
//! keyrotor names the role of each version (`spec.usernames`, the request's
//! `username`), and presenters get it beside the key:
//!
//! - **stage vN** (role U) gives U a fresh password and `LOGIN` in one
//!   `ALTER ROLE`, and marks U with vN in the same transaction; the hook
//!   then proves a login with that password. It refuses when U is not one
//!   of the pair, is not a member of the group, or still logs in for
//!   another version: that login is the one presenters use now. One
//!   exception: while both roles log in, U holding the newer version, vN
//!   replaces it. keyrotor names U so only to replace a revoked current
//!   version (or a staged one whose key was lost) while presenters of the
//!   older version, on the other role, must keep working.
//! - **retire vN** sets `NOLOGIN` on the role marked vN, and on nothing
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
//! sees whether its role is free. A random password would look exactly
//! like a live one in `pg_authid`, so a restarted hook could not tell a
//! retired role from a serving one; it would also be a secret generated
//! only to be thrown away. `NOLOGIN` shows in `\du`, and an operator can
//! undo it (`ALTER ROLE … LOGIN`) in an emergency. The old verifier stays
//! on the disabled role, harmless: the next stage on that role replaces it
//! in the statement that turns `LOGIN` back on, so a retired password never
//! works again.
//!
//! **Open sessions.** PostgreSQL checks passwords and `rolcanlogin` at
//! connection time only: neither `NOLOGIN` nor a new password ends
//! sessions already open, so pooled connections of vN-1 keep working until
//! they close. That is what makes the switch gapless; whoever must cut
//! them runs [`terminate_sessions`] (needs `pg_signal_backend`).
//!
//! **An adopted version** (`spec.adopt`: the role's password from before
//! keyrotor) was never staged, so its role carries no mark. Its stage, if
//! asked, marks the role once the key is proven to log in; its retire
//! disables the role only while the other role serves a newer version of
//! this rotation: nothing else can have asked for it.
//!
//! The grants the user sets up once are in docs/postgres.md.

use zeroize::Zeroizing;

use super::scram::{ScramError, verifier};
use super::wire::Answer;

/// PBKDF2 iterations of the verifiers the hook sets (PostgreSQL's default).
pub const ITERATIONS: u32 = 4096;
const MARK_PREFIX: &str = "keyrotor rotation ";

/// Why a step cannot be done; the hook answers with it (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{0:?} is not a role name keyrotor accepts (lowercase letters, digits, _; at most 63; not pg_*)"
    )]
    RoleName(String),
    #[error("{0:?} is not a Kubernetes uid")]
    Uid(String),
    #[error("the two login roles and the group must all differ")]
    SameRoles,
    #[error("role {0} does not exist")]
    Missing(String),
    #[error("the role state read from pg_roles is malformed")]
    Malformed,
    /// The version names no role: `spec.usernames` is not set.
    #[error(
        "version {version} names no user; this hook alternates the roles {a} and {b}: set spec.usernames: [{a}, {b}]"
    )]
    NoUsername { version: u64, a: String, b: String },
    #[error("user {username:?} is not one of this hook's roles ({a}, {b}); fix spec.usernames")]
    NotInPair {
        username: String,
        a: String,
        b: String,
    },
    #[error("role {role} does not inherit the privileges of {group}: run GRANT {group} TO {role}")]
    NotMember { role: String, group: String },
    /// A newer version is already staged: this one is a late repeat.
    #[error("role {role} already holds version {newer}; version {version} is stale")]
    Stale {
        role: String,
        newer: u64,
        version: u64,
    },
    /// The role named for vN still logs in for another version of this
    /// rotation: presenters may be using it.
    #[error(
        "role {role} still logs in with version {serving}, which presenters may use; version {version} needs a role that cannot log in (retire version {serving} first)"
    )]
    Serving {
        role: String,
        serving: u64,
        version: u64,
    },
    #[error("version {version} was retired on role {role}; a retired version is not staged again")]
    Retired { role: String, version: u64 },
    /// The role logs in with a password this rotation did not set, and the
    /// version's key is not it.
    #[error(
        "role {role} logs in with a password this rotation did not set (by hand, or by a rotation deleted and created again), which clients may use; set NOLOGIN on it once none does, or start the rotation with the free role first in spec.usernames"
    )]
    Foreign { role: String },
    #[error("version {version} is held by role {held}, not {username} as the request says")]
    Elsewhere {
        version: u64,
        held: String,
        username: String,
    },
    #[error(transparent)]
    Password(#[from] ScramError),
}

/// A role's name, checked so it can be quoted without surprises.
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

impl std::fmt::Display for RoleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two login roles that take turns, and the group whose privileges
/// both inherit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    roles: [RoleName; 2],
    group: RoleName,
}

impl Pair {
    pub fn new(a: RoleName, b: RoleName, group: RoleName) -> Result<Pair, PlanError> {
        if a == b || group == a || group == b {
            return Err(PlanError::SameRoles);
        }
        Ok(Pair {
            roles: [a, b],
            group,
        })
    }

    pub fn roles(&self) -> &[RoleName; 2] {
        &self.roles
    }

    pub fn group(&self) -> &RoleName {
        &self.group
    }

    /// The statement that reads both roles' state. It fails (SQLSTATE
    /// 42704) when the group does not exist.
    pub fn state_query(&self) -> String {
        format!(
            "SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid'), \
             pg_catalog.pg_has_role(oid, {}, 'USAGE') \
             FROM pg_catalog.pg_roles WHERE rolname IN ({}, {})",
            literal(self.group.as_str()),
            literal(self.roles[0].as_str()),
            literal(self.roles[1].as_str())
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
            let flag = |i: usize| match row.get(i).and_then(|v| v.as_deref()) {
                Some("t") => Ok(true),
                Some("f") => Ok(false),
                _ => Err(PlanError::Malformed),
            };
            let mark = row.get(2).and_then(|c| c.as_deref()).and_then(Mark::parse);
            Ok(RoleState {
                name: role.clone(),
                can_login: flag(1)?,
                mark,
                member: flag(3)?,
            })
        };
        Ok(State([read(&self.roles[0])?, read(&self.roles[1])?]))
    }

    /// The role `username` names, or why the request cannot be served.
    fn named(&self, username: Option<&str>, version: u64) -> Result<usize, PlanError> {
        let [a, b] = &self.roles;
        let username = username.ok_or_else(|| PlanError::NoUsername {
            version,
            a: a.to_string(),
            b: b.to_string(),
        })?;
        self.roles
            .iter()
            .position(|r| r.as_str() == username)
            .ok_or_else(|| PlanError::NotInPair {
                username: username.to_string(),
                a: a.to_string(),
                b: b.to_string(),
            })
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
    /// Whether it inherits the group's privileges.
    pub member: bool,
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

/// Where the named role stands for a stage of vN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It cannot log in: [`Stage::sql`] gives it the password, `LOGIN` and
    /// the mark.
    Free,
    /// It logs in with the newest of two live versions, which vN replaces
    /// (keyrotor replaces a revoked current version, or a staged one whose
    /// key was lost, on the same user while the older version serves on
    /// the other): [`Stage::sql`] as for a free role.
    Replacing(u64),
    /// It holds vN already and logs in (a repeated step): prove the login;
    /// only if that fails, [`Stage::sql`] sets the password again.
    Held,
    /// It logs in with a password this rotation did not set (an adopted
    /// key, or one set by hand): if vN's key logs in, [`Stage::mark`]
    /// records it; otherwise the stage is refused ([`PlanError::Foreign`]).
    Foreign,
}

/// What stage (or issue) vN does to the role the request names.
pub struct Stage {
    /// The role presenters of vN log in as.
    pub role: RoleName,
    pub standing: Standing,
    /// One transaction: password (as a SCRAM verifier), `LOGIN`, mark.
    pub sql: Zeroizing<String>,
    /// The mark alone, for a role whose password is already vN's.
    pub mark: String,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("role", &self.role)
            .field("standing", &self.standing)
            .field("sql", &"<holds a password verifier>")
            .finish()
    }
}

/// Stage `version` of rotation `uid` for `username` with `password`;
/// `salt` (16 random bytes from the caller) goes into the verifier.
pub fn stage(
    pair: &Pair,
    state: &State,
    uid: &str,
    version: u64,
    username: Option<&str>,
    password: &str,
    salt: &[u8],
) -> Result<Stage, PlanError> {
    check_uid(uid)?;
    let named = pair.named(username, version)?;
    let target = &state.0[named];
    let standing = standing(state, named, uid, version)?;
    if !target.member {
        return Err(PlanError::NotMember {
            role: target.name.to_string(),
            group: pair.group.to_string(),
        });
    }
    let mark = Mark {
        uid: uid.to_string(),
        version,
    };
    let role = ident(target.name.as_str());
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
        role: target.name.clone(),
        standing,
        sql,
        mark: format!("COMMENT ON ROLE {role} IS {}", literal(&mark.comment())),
    })
}

/// Where role `named` stands for vN, or why vN cannot go there.
fn standing(state: &State, named: usize, uid: &str, version: u64) -> Result<Standing, PlanError> {
    if let Some((r, newer)) = state
        .0
        .iter()
        .filter_map(|r| Some((r, r.version_of(uid).filter(|v| *v > version)?)))
        .max_by_key(|(_, newer)| *newer)
    {
        return Err(PlanError::Stale {
            role: r.name.to_string(),
            newer,
            version,
        });
    }
    let (target, other) = (&state.0[named], &state.0[1 - named]);
    let name = target.name.to_string();
    Ok(match (target.version_of(uid), target.can_login) {
        (Some(v), true) if v == version => Standing::Held,
        (Some(v), false) if v == version => {
            return Err(PlanError::Retired {
                role: name,
                version,
            });
        }
        // Both roles log in and keyrotor names the newer one's: it replaces
        // that version (revoked, or its key lost) while presenters of the
        // older one, on the other role, keep working.
        (Some(newest), true)
            if other.can_login && other.version_of(uid).is_some_and(|v| v < newest) =>
        {
            Standing::Replacing(newest)
        }
        (Some(serving), true) => {
            return Err(PlanError::Serving {
                role: name,
                serving,
                version,
            });
        }
        (None, true) => Standing::Foreign,
        (_, false) => Standing::Free,
    })
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

/// Retire `version` of rotation `uid`, whose role is `username` when the
/// request names one.
pub fn retire(
    pair: &Pair,
    state: &State,
    uid: &str,
    version: u64,
    username: Option<&str>,
) -> Result<Retire, PlanError> {
    check_uid(uid)?;
    let named = username.map(|u| pair.named(Some(u), version)).transpose()?;
    let nologin = |r: &RoleState| format!("ALTER ROLE {} WITH NOLOGIN", ident(r.name.as_str()));
    if let Some((i, r)) = state
        .0
        .iter()
        .enumerate()
        .find(|(_, r)| r.version_of(uid) == Some(version))
    {
        if named.is_some_and(|n| n != i) {
            return Err(PlanError::Elsewhere {
                version,
                held: r.name.to_string(),
                username: username.unwrap_or_default().to_string(),
            });
        }
        return Ok(if r.can_login {
            Retire::Disable {
                role: r.name.clone(),
                sql: nologin(r),
            }
        } else {
            Retire::Done {
                role: r.name.clone(),
            }
        });
    }
    // An adopted vN: its role was never marked. It is disabled (and marked,
    // so a repeat finds it done) only while the other role serves a newer
    // version of this rotation, which keyrotor staged as its successor.
    let Some(i) = named else {
        return Ok(Retire::Unknown);
    };
    let (r, other) = (&state.0[i], &state.0[1 - i]);
    let successor_serves = other.can_login && other.version_of(uid).is_some_and(|v| v > version);
    if r.can_login && r.version_of(uid).is_none() && successor_serves {
        let mark = Mark {
            uid: uid.to_string(),
            version,
        };
        return Ok(Retire::Disable {
            role: r.name.clone(),
            sql: format!(
                "BEGIN; {}; COMMENT ON ROLE {} IS {}; COMMIT",
                nologin(r),
                ident(r.name.as_str()),
                literal(&mark.comment())
            ),
        });
    }
    Ok(Retire::Unknown)
}

/// Issue `version` (issuer role): stage it with the password derived from
/// `uid` and `version` under the issuer secret; the password to answer
/// with comes back beside the plan.
pub fn issue(
    pair: &Pair,
    state: &State,
    issuer_secret: &[u8],
    uid: &str,
    version: u64,
    username: Option<&str>,
    salt: &[u8],
) -> Result<(Stage, Zeroizing<String>), PlanError> {
    let password = crate::issue::derive(issuer_secret, uid, version);
    let s = stage(pair, state, uid, version, username, &password, salt)?;
    Ok((s, password))
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
