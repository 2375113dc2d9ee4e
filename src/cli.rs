//! Command line: one binary, one subcommand per job.

use clap::{Parser, Subcommand};

use keyrotor_sidecar::gateway::VerifierArgs;
use keyrotor_sidecar::reporter::ReporterArgs;

use crate::logging::{LogFormat, init_logging};

/// keyrotor: rotate API keys with zero failed requests.
#[derive(Parser, Debug)]
#[command(name = "keyrotor", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// A verifier hook for a Redis 7 ACL user: keyrotor's versions become
    /// the user's passwords, added before presenters get them and removed
    /// after every presenter moved on.
    Redis(keyrotor_hooks::redis::RedisHookArgs),
    /// A verifier (or issuer) hook for PostgreSQL passwords by alternating
    /// users: each version goes to the login role keyrotor names, and the
    /// other role stops logging in after every presenter moved on.
    Postgres(keyrotor_hooks::postgres::PostgresHookArgs),
    /// The conformance kit for hook authors: drive the hook at URL through
    /// every step and fault keyrotor may send, and print a pass/fail table
    /// (exit status 1 if any check fails).
    Check(keyrotor_hooks::check::CheckArgs),
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or the
    /// in-cluster service account).
    Run(crate::run::RunArgs),
    /// Watch keyrotor rotate a key with zero failed requests: the real
    /// controller on an in-memory API, simulated pods and traffic, and a naive
    /// overwrite for comparison.
    #[cfg(feature = "testkit")]
    Demo(crate::demo::DemoArgs),
    /// Sidecar: report the revisions of the mounted projected Secrets as
    /// annotations on this pod (POD_NAME, POD_NAMESPACE from the Downward
    /// API). The same as `keyrotor-sidecar reporter`, which pods should run.
    Reporter(ReporterArgs),
    /// Sidecar beside a gateway: answer nginx `auth_request`, Envoy
    /// `ext_authz` and Traefik `ForwardAuth` checks against the mounted
    /// verifier Secret, confirm what it loaded, count traffic per version.
    /// The same as `keyrotor-sidecar verifier`, which pods should run.
    Verifier(VerifierArgs),
    /// A sample service on the client library: a verifier that answers
    /// requests and a presenter that calls it and records each outcome.
    #[cfg(feature = "testkit")]
    #[command(subcommand)]
    SampleApp(crate::sample_app::SampleApp),
    /// Reference hooks (docs/hooks.md), and the conformance kit for any hook.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Print the ApiKeyRotation CustomResourceDefinition as YAML.
    Crd {
        /// Print the Helm chart's template of it instead (charts/keyrotor/templates/crd.yaml).
        #[arg(long)]
        chart: bool,
    },
    /// Check ApiKeyRotation manifests (YAML files, `-` for stdin) against every
    /// rule keyrotor enforces, and print each problem with its field path.
    Validate {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// Runs a parsed command, returning the process exit code.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run(args) => {
            init_logging(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(crate::run::run(args))?)
        }
        Command::Reporter(args) => Ok(keyrotor_sidecar::cli::reporter(args)?),
        Command::Verifier(args) => Ok(keyrotor_sidecar::cli::verifier(args)?),
        Command::Hook(HookCommand::Redis(args)) => {
            init_logging(LogFormat::Text);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(keyrotor_hooks::redis::main(args))?)
        }
        Command::Hook(HookCommand::Postgres(args)) => {
            init_logging(LogFormat::Text);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(keyrotor_hooks::postgres::main(args))?)
        }
        Command::Hook(HookCommand::Check(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(keyrotor_hooks::check::main(args))?)
        }
        #[cfg(feature = "testkit")]
        Command::SampleApp(app) => {
            init_logging(LogFormat::Text);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(crate::sample_app::main(app))?)
        }
        #[cfg(feature = "testkit")]
        Command::Demo(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?;
            Ok(runtime.block_on(crate::demo::print(args))?)
        }
        Command::Crd { chart } => {
            if chart {
                print!("{}", crate::api::crd_chart_template());
            } else {
                print!("{}", crate::api::crd_yaml());
            }
            Ok(())
        }
        Command::Validate { files } => Ok(validate_files(&files)?),
    }
}

fn validate_files(files: &[String]) -> Result<(), ValidateError> {
    use std::io::Read;
    let mut failed = 0;
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(ValidateError::Stdin)?;
            s
        } else {
            std::fs::read_to_string(file).map_err(|source| ValidateError::Read {
                file: file.clone(),
                source,
            })?
        };
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                serde_yaml::Value::deserialize(doc).map_err(|source| ValidateError::Yaml {
                    file: file.clone(),
                    source,
                })?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("ApiKeyRotation") {
                continue;
            }
            let name = value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("<unnamed>")
                .to_string();
            let result = serde_yaml::from_value::<crate::api::ApiKeyRotation>(value)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    crate::api::validate::validate(&name, &r.spec).map_err(|e| e.to_string())
                });
            match result {
                Ok(_) => println!("{file}: {name}: valid"),
                Err(e) => {
                    failed += 1;
                    println!("{file}: {name}: {e}");
                }
            }
        }
    }
    if failed > 0 {
        return Err(ValidateError::Invalid(failed));
    }
    Ok(())
}

use serde::Deserialize;

/// A command's outcome: an error is one sentence for the user.
pub type CliResult = Result<(), Error>;

/// Why a command failed: each entry point's own error, printed as
/// `keyrotor: {error}` by `main`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command's runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Run(#[from] crate::run::Error),
    #[error(transparent)]
    Sidecar(#[from] keyrotor_sidecar::Error),
    #[error(transparent)]
    Hook(#[from] keyrotor_hooks::Error),
    #[cfg(feature = "testkit")]
    #[error(transparent)]
    SampleApp(#[from] crate::sample_app::Error),
    #[cfg(feature = "testkit")]
    #[error(transparent)]
    Demo(#[from] crate::demo::Error),
    #[error(transparent)]
    Validate(#[from] ValidateError),
}

/// Why `keyrotor validate` failed: a file unreadable or not YAML, or some
/// ApiKeyRotation invalid (each problem is printed on stdout first).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("stdin: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Yaml {
        file: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{0} invalid ApiKeyRotation(s)")]
    Invalid(usize),
}
