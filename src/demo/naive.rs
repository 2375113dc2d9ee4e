//! The strategy most tools use, for comparison: write the new key over the
//! old one in both Secrets at once. Pods pick the change up at their own
//! kubelet delay, so for a while some clients send a key that some servers do
//! not have yet, or have already dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::pods::{self, PodsConfig};
use super::run::Outcome;
use super::{DemoArgs, Error};
use crate::keys::{Alphabet, KeySpec, SecretKey};
use crate::testkit::FakeApi;

const NS: &str = "default";

async fn overwrite(client: &Client, version: u64) -> Result<(), Error> {
    let spec = KeySpec {
        alphabet: Alphabet::Base62,
        length: 32,
        prefix: String::new(),
        checksum: false,
    };
    let key = SecretKey::generate(&spec)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    let write = |name: &str, data: BTreeMap<String, ByteString>| {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": data});
        let api = api.clone();
        let name = name.to_string();
        async move {
            api.patch(
                &name,
                &PatchParams::apply("naive").force(),
                &Patch::Apply(&secret),
            )
            .await
            .map(drop)
        }
    };
    let digest = BTreeMap::from([(
        crate::wire::digest_file(version),
        ByteString(key.digest().into_bytes()),
    )]);
    let current = BTreeMap::from([(
        crate::wire::KEY.to_string(),
        ByteString(key.expose().as_bytes().to_vec()),
    )]);
    write("naive-verifier", digest).await?;
    Ok(write("naive-key", current).await?)
}

/// Overwrites the key `args.cycles` times, one `interval` apart.
pub async fn run(
    args: &DemoArgs,
    interval: Duration,
    out: impl Fn(String),
) -> Result<Outcome, Error> {
    let api = FakeApi::new();
    let client = api.client();
    overwrite(&client, 1).await?;
    let pods = pods::start(
        client.clone(),
        PodsConfig {
            rotation: "naive",
            verifier_secret: "naive-verifier",
            presenter_secret: "naive-key",
            per_role: args.pods,
            delays: args.delays(),
            seed: args.seed,
            report: false,
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut outcome = Outcome::default();
    let interval = interval.max(args.delays().1 + Duration::from_millis(500));
    for cycle in 1..=args.cycles {
        let version = u64::from(cycle) + 1;
        overwrite(&client, version).await?;
        out(format!(
            "  t={:>5.1}s  overwrote the key with version {version} in both Secrets",
            start.elapsed().as_secs_f64()
        ));
        tokio::time::sleep(interval).await;
        outcome.cycles.push(interval);
        outcome.rotations = cycle;
    }
    outcome.count(&pods.stats);
    Ok(outcome)
}
