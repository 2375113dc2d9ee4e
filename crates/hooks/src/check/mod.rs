//! `keyrotor hook check URL`: a conformance kit for hook authors. It
//! drives a hook through every step of the protocol and the faults keyrotor
//! lives with (a retry, a lost answer, two attempts at once, a re-created
//! rotation, a wrong token, requests of a newer protocol) and prints one
//! row per check: PASS or FAIL, what was expected, what came back. Every
//! answer is read with the protocol's own reader
//! ([`keyrotor_consumer::hook::Outcome::read`]), as keyrotor reads it.
//!
//! - [`cases`]: the checks, as data.
//! - [`run`]: sends them against a fresh made-up rotation and cleans up.
//! - [`judge`]: reads one answer against what a check expects.
//! - [`client`]: the small HTTP client, bounded in time.
//! - [`report`]: the table (Markdown) and its JSON.
//!
//! What the kit cannot see is the system behind the hook: that a refused
//! request (a wrong token, a bad digest) left it untouched is checked only
//! by the answer. A hook's own tests must show that.

pub mod cases;
pub mod client;
pub mod judge;
pub mod report;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use keyrotor_consumer::hook::username_ok;
use zeroize::Zeroizing;

pub use cases::Role;
pub use report::{Report, Row};

use crate::auth::secret_file;
use client::{Client, Url};

/// The flags of `keyrotor hook check`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// The hook's URL, as in the rotation's `url` (http:// or https://).
    pub url: String,
    /// File holding a bearer token the hook accepts (as in `tokenSecretRef`).
    #[arg(long, env = "KEYROTOR_HOOK_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Check the issuer role (`spec.issuerHook`: issue, and retire with the
    /// keyId) instead of the verifier role (stage and retire).
    #[arg(long)]
    pub issuer: bool,
    /// The rotation's `spec.usernames`: once for one user, twice for
    /// alternating users (odd versions the first, even the second).
    #[arg(long = "username", value_name = "USER")]
    pub usernames: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Seconds to wait for one answer (the rotation's `timeoutSeconds`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,
    /// Seconds a step may stay pending (HTTP 202) before its check fails.
    #[arg(long, default_value_t = 120)]
    pub pending_limit: u64,
    /// PEM CA bundle of an https:// hook (the rotation's `caBundle`);
    /// default: the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why the kit could not run, or did and found the hook wanting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Url(String, &'static str),
    #[error("caBundle holds no usable PEM certificate: {0}")]
    CaBundle(String),
    #[error("--username {0:?}: {1}")]
    Username(String, &'static str),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{failed} of {total} checks failed")]
    Failed { failed: usize, total: usize },
}

/// What a run needs: where the hook is and how to talk to it.
pub struct Options {
    pub url: String,
    pub client: Client,
    pub token: Zeroizing<String>,
    pub role: Role,
    pub usernames: Vec<String>,
    pub pending_limit: Duration,
}

impl Options {
    /// Options for `url` with keyrotor's defaults: 10 s per answer, 120 s
    /// of pending at most, the system's roots for https://.
    pub fn new(
        url: &str,
        token: Zeroizing<String>,
        role: Role,
        usernames: Vec<String>,
    ) -> Result<Options, Error> {
        Options::with(url, token, role, usernames, Duration::from_secs(10), None)
    }

    fn with(
        url: &str,
        token: Zeroizing<String>,
        role: Role,
        usernames: Vec<String>,
        timeout: Duration,
        ca_pem: Option<&str>,
    ) -> Result<Options, Error> {
        check_usernames(&usernames)?;
        Ok(Options {
            url: url.to_string(),
            client: Client::new(Url::parse(url)?, timeout, ca_pem)?,
            token,
            role,
            usernames,
            pending_limit: Duration::from_secs(120),
        })
    }
}

/// One or two distinct user names a version can carry.
fn check_usernames(names: &[String]) -> Result<(), Error> {
    if let Some(extra) = names.get(2) {
        return Err(Error::Username(extra.clone(), "at most two user names"));
    }
    for (i, name) in names.iter().enumerate() {
        if !username_ok(name) {
            return Err(Error::Username(
                name.clone(),
                "1–63 bytes of printable ASCII without spaces",
            ));
        }
        if names[..i].contains(name) {
            return Err(Error::Username(name.clone(), "given twice"));
        }
    }
    Ok(())
}

/// Runs every check against the hook of `options`.
pub async fn run(options: &Options) -> Report {
    run::run(options).await
}

/// `keyrotor hook check`: runs, prints the table, writes the JSON, and
/// fails if any check did.
pub async fn main(args: CheckArgs) -> Result<(), crate::Error> {
    let token = secret_file(&args.token_file)?;
    if token.is_empty() {
        return Err(crate::Error::EmptyToken(args.token_file));
    }
    let ca_pem = match &args.ca_file {
        Some(path) => Some(secret_file(path)?),
        None => None,
    };
    let role = if args.issuer {
        Role::Issuer
    } else {
        Role::Verifier
    };
    let mut options = Options::with(
        &args.url,
        token,
        role,
        args.usernames,
        Duration::from_secs(args.timeout),
        ca_pem.as_deref().map(String::as_str),
    )?;
    options.pending_limit = Duration::from_secs(args.pending_limit);
    let report = run(&options).await;
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json()).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    match report.failed() {
        0 => Ok(()),
        failed => Err(Error::Failed {
            failed,
            total: report.rows.len(),
        }
        .into()),
    }
}
