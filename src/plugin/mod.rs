//! `kubectl keyrotor`: the kubectl plugin for people operating rotations.
//!
//! Every verb is one read or one write of an ApiKeyRotation through the current
//! kubeconfig, so RBAC on `apikeyrotations` decides who may do what, and the
//! audit log names the user. Writes use the field manager `kubectl-keyrotor`.
//! Layout: this file parses and dispatches, [`table`] renders (pure),
//! [`verbs`] talks to the API.

pub mod table;
pub mod verbs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate keyrotor API key rotations: see where each stands, start, roll back,
/// revoke, pause.
#[derive(Parser, Debug)]
#[command(name = "kubectl-keyrotor", bin_name = "kubectl keyrotor", version)]
pub struct Args {
    /// Namespace of the ApiKeyRotation (default: the current kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,

    #[command(subcommand)]
    pub verb: Verb,
}

/// One subcommand per verb; each is a single read or write that RBAC governs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Show rotations in one table: versions, stage, confirmation, next rotation.
    ///
    /// Columns: current version (with its user name, when `spec.usernames`
    /// gave it one) and accepted versions, stage, verifiers and presenters
    /// confirmed out of total, the Ready condition with its reason, and the
    /// next scheduled rotation. With NAME, also list the consumers a cycle in
    /// flight still waits for and any stalled or not-Ready condition.
    Status {
        /// One ApiKeyRotation (default: every one in the namespace).
        name: Option<String>,
        /// List rotations in every namespace.
        #[arg(short = 'A', long, conflicts_with = "name")]
        all_namespaces: bool,
    },
    /// Start a rotation now (after the cycle in flight, if any).
    ///
    /// Sets the annotation keyrotor.dev/rotate to a fresh token. An annotation
    /// is not part of the manifest kept in Git, so an Argo CD or Flux sync of
    /// the rotation does not revert it, and the rotation is not restarted by
    /// the next sync either: keyrotor acts once per token. Needs `patch` on
    /// apikeyrotations.
    Rotate {
        /// The ApiKeyRotation.
        name: String,
    },
    /// Send presenters back to the previous version while it is still accepted.
    ///
    /// Sets the annotation keyrotor.dev/rollback to a fresh token; like
    /// `rotate`, a GitOps sync of the spec does not revert it. keyrotor refuses
    /// (with a RollbackRejected event) once the previous version has retired.
    Rollback {
        /// The ApiKeyRotation.
        name: String,
    },
    /// Revoke a version now (emergency): it stops being accepted at once.
    ///
    /// Verifiers stop accepting VERSION and its key material is deleted; if
    /// it is the current key, presenters get a fresh one at once. Adds VERSION to spec.revokedVersions. Under GitOps, commit the same
    /// change to Git, or the next sync removes the entry from the spec.
    Revoke {
        /// The ApiKeyRotation.
        name: String,
        /// Version number to revoke (see `history`).
        version: u64,
    },
    /// List versions: state, fingerprint, created, promoted, retired.
    ///
    /// Every version status keeps (the live ones and the most recent retired
    /// ones), with a USER column when versions carry user names.
    /// Fingerprints only: status never holds key material.
    History {
        /// The ApiKeyRotation.
        name: String,
    },
    /// Pause rotation; every published key stays valid.
    ///
    /// No new cycle starts and a cycle in flight holds where it is; revocation
    /// still applies. Sets spec.suspend. Under GitOps, commit it to Git, or the next sync
    /// reverts it.
    Suspend {
        /// The ApiKeyRotation.
        name: String,
    },
    /// Resume a suspended rotation (sets spec.suspend to false).
    Resume {
        /// The ApiKeyRotation.
        name: String,
    },
}

/// Why a command failed, as one sentence for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("apikeyrotation {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("the ApiKeyRotation API is not installed in this cluster (kubectl apply -f crds/)")]
    NoCrd,
    /// The apiserver's own sentence already names the user, verb and resource.
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "apikeyrotation {namespace}/{name} kept changing while revoking version {version}; run the command again"
    )]
    Conflict {
        namespace: String,
        name: String,
        version: u64,
    },
    /// A request the plugin refuses before writing anything.
    #[error("{0}")]
    Refused(String),
    #[error("cannot load the kubeconfig: {0}")]
    Config(String),
    #[error("{0}")]
    Api(String),
}

/// Runs the parsed command line and returns the process exit code: output on
/// stdout, one error sentence on stderr and exit code 1 on failure.
pub fn main(args: Args) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Api(format!("cannot start the async runtime: {e}")))
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one verb against the cluster of the current kubeconfig and returns
/// what to print.
pub async fn run(args: Args) -> Result<String, Error> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::Config(chain(&e)))?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let now = jiff::Timestamp::now();
    let target = |name: String| verbs::Target::new(client.clone(), &namespace, name);
    match args.verb {
        Verb::Status {
            name: Some(name),
            all_namespaces: _,
        } => verbs::status_one(&target(name), now).await,
        Verb::Status {
            name: None,
            all_namespaces,
        } => {
            let scope = (!all_namespaces).then_some(namespace.as_str());
            verbs::status_list(client.clone(), scope, now).await
        }
        Verb::Rotate { name } => verbs::request(&target(name), verbs::Request::Rotate, now).await,
        Verb::Rollback { name } => {
            verbs::request(&target(name), verbs::Request::Rollback, now).await
        }
        Verb::Revoke { name, version } => verbs::revoke(&target(name), version).await,
        Verb::History { name } => verbs::history(&target(name)).await,
        Verb::Suspend { name } => verbs::suspend(&target(name), true).await,
        Verb::Resume { name } => verbs::suspend(&target(name), false).await,
    }
}

/// An error and its sources in one line ("connection refused" is usually
/// three levels down in a kube client error).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn status_refuses_a_name_together_with_all_namespaces() {
        let err = Args::try_parse_from(["kubectl-keyrotor", "status", "orders", "-A"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn the_namespace_flag_works_before_and_after_the_verb() {
        for argv in [
            ["kubectl-keyrotor", "-n", "shop", "rotate", "orders"],
            ["kubectl-keyrotor", "rotate", "orders", "-n", "shop"],
        ] {
            let args = Args::try_parse_from(argv).unwrap();
            assert_eq!(args.namespace.as_deref(), Some("shop"));
        }
    }

    #[test]
    fn rotate_help_explains_why_gitops_does_not_revert_it() {
        let help = Args::command()
            .find_subcommand_mut("rotate")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("Argo CD"), "{help}");
        assert!(help.contains(crate::wire::ROTATE_REQUEST), "{help}");
    }
}
