//! The keyrotor side of the demo: the real controller, its ApiKeyRotation,
//! and rotations back to back, timed per stage.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;

use super::pods::{self, PodsConfig, Stats};
use super::{DemoArgs, Error};
use crate::api::ApiKeyRotation;
use crate::controller;
use crate::ops::{Health, Metrics};
use crate::rotation::Stage;
use crate::testkit::FakeApi;
use crate::wire as k;

const NS: &str = "default";
const VERIFIER: &str = "api-verifier";
const PRESENTER: &str = "api-key";

/// What one strategy's run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rotations: u32,
    pub requests: u64,
    pub rejected: u64,
    pub rejected_outside: u64,
    pub cycles: Vec<Duration>,
    pub staging: Option<Duration>,
    pub promoting: Option<Duration>,
}

impl Outcome {
    pub fn mean_cycle(&self) -> Duration {
        if self.cycles.is_empty() {
            return Duration::ZERO;
        }
        self.cycles.iter().sum::<Duration>() / self.cycles.len() as u32
    }

    pub(super) fn count(&mut self, stats: &Stats) {
        self.requests = stats.requests.load(Ordering::Relaxed);
        self.rejected = stats.rejected.load(Ordering::Relaxed);
        self.rejected_outside = stats.rejected_outside.load(Ordering::Relaxed);
    }
}

fn spec(args: &DemoArgs, request: &str) -> serde_json::Value {
    json!({
        "secrets": {"verifier": VERIFIER, "presenter": PRESENTER},
        "gracePeriod": {"minimum": format!("{}s", args.grace), "maximum": "10m"},
        "consumers": {
            "verifiers": {"nudge": args.nudge},
            "presenters": {"nudge": args.nudge, "traffic": {"quietWindow": "4s"}},
        },
        "rotationRequest": request,
    })
}

async fn apply(client: &Client, args: &DemoArgs, request: &str) -> Result<(), Error> {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), NS);
    let obj = json!({"apiVersion": k::API_VERSION, "kind": "ApiKeyRotation",
                     "metadata": {"name": "api", "namespace": NS}, "spec": spec(args, request)});
    api.patch(
        "api",
        &PatchParams::apply("demo").force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(())
}

async fn current(client: &Client) -> Option<u64> {
    let s = Api::<Secret>::namespaced(client.clone(), NS)
        .get_opt(PRESENTER)
        .await
        .ok()??;
    s.metadata.annotations?.get(k::CURRENT)?.parse().ok()
}

async fn stable_at(client: &Client, version: u64) -> bool {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), NS);
    let Ok(r) = api.get("api").await else {
        return false;
    };
    let s = r.status.unwrap_or_default();
    s.stage == Some(Stage::Stable)
        && s.current_version == Some(version)
        && s.accepted_versions.len() == 1
}

/// Prints each step of the rotation as status reports it, with the time since `start`.
fn print_progress(
    client: Client,
    start: Instant,
    out: impl Fn(String) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<ApiKeyRotation> = Api::namespaced(client, NS);
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(r) = api.get("api").await else {
                continue;
            };
            let s = r.status.unwrap_or_default();
            let accepted: Vec<String> = s.accepted_versions.iter().map(u64::to_string).collect();
            let current = s.current_version.map_or("-".into(), |c| c.to_string());
            let line = match s.stage {
                Some(Stage::Staging) => format!(
                    "Staging     verifiers accept {{{}}}, presenters still send {current}",
                    accepted.join(",")
                ),
                Some(Stage::Promoting) => format!(
                    "Promoting   presenters send {current}; {{{}}} stay accepted during grace",
                    accepted.join(",")
                ),
                Some(Stage::Stable) => {
                    format!("Stable      version {current} is the only accepted key")
                }
                Some(other) => format!("{other:?}"),
                None => continue,
            };
            if line != last {
                out(format!(
                    "  t={:>5.1}s  {line}",
                    start.elapsed().as_secs_f64()
                ));
                last = line;
            }
        }
    })
}

/// Runs `args.cycles` rotations with keyrotor; `out` receives the timeline.
pub async fn run_keyrotor(
    args: &DemoArgs,
    out: impl Fn(String) + Send + Clone + 'static,
) -> Result<Outcome, Error> {
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let client = api.client();
    let config = controller::Config {
        namespaces: vec![NS.into()],
        instance: Some("demo".into()),
        concurrency: 0,
        list_secrets: false,
    };
    let operator = tokio::spawn(controller::run(
        client.clone(),
        config,
        Arc::new(Metrics::new(controller::ERROR_CATEGORIES)),
        Arc::new(Health::default()),
    ));
    let start = Instant::now();
    let printer = print_progress(client.clone(), start, out.clone());
    apply(&client, args, "demo-0").await?;
    wait(Duration::from_secs(30), || async {
        current(&client).await == Some(1)
    })
    .await?;
    // Pods that mount the Secrets start once they exist, as on a real node.
    let pods = pods::start(
        client.clone(),
        PodsConfig {
            rotation: "api",
            verifier_secret: VERIFIER,
            presenter_secret: PRESENTER,
            per_role: args.pods,
            delays: args.delays(),
            seed: args.seed,
            report: true,
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut outcome = Outcome::default();
    let (mut staging, mut promoting) = (Duration::ZERO, Duration::ZERO);
    for cycle in 1..=args.cycles {
        let target = u64::from(cycle) + 1;
        let t0 = Instant::now();
        apply(&client, args, &format!("demo-{cycle}")).await?;
        wait(Duration::from_secs(120), || async {
            current(&client).await == Some(target)
        })
        .await?;
        let promoted = t0.elapsed();
        wait(Duration::from_secs(120), || async {
            stable_at(&client, target).await
        })
        .await?;
        staging += promoted;
        promoting += t0.elapsed() - promoted;
        outcome.cycles.push(t0.elapsed());
        outcome.rotations = cycle;
    }
    // Let the last requests land before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    outcome.count(&pods.stats);
    outcome.staging = Some(staging / args.cycles.max(1));
    outcome.promoting = Some(promoting / args.cycles.max(1));
    drop(pods);
    printer.abort();
    operator.abort();
    Ok(outcome)
}

/// Polls `check` every 50 ms for at most `limit`.
pub(super) async fn wait<F, Fut>(limit: Duration, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            return Err(Error::Stalled {
                secs: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
