//! `cargo bench --bench nudge [-- CYCLES]`: how long a rotation takes on real
//! pods with the nudge and without it, stage by stage, beside the physical
//! floor. Needs the real cluster (`tests/cluster/up --real-nodes 1`, then
//! `source tests/cluster/.run/env` and `eval "$(.ci/tools)"`); see
//! docs/performance.md.
//!
//! The operator runs as a pod installed by helm; verifier and presenter pods
//! run the sample app with the reporter sidecar (the e2e suite's real-pod
//! stage). Every Secret and Pod change is timed as it arrives on a watch:
//!
//! - staging: request → verifier Secret accepts the new version
//! - verifiers load: → every verifier pod reported that revision
//!   (kubelet remount + reporter poll + its write)
//! - promote: → presenter Secret sends the new version
//! - presenters load: → every presenter pod reported it
//! - grace + retire: → the old version left the verifier Secret
//!
//! The floor is what no operator could beat with these consumers: both
//! groups loading the change, and the presenters' load or the minimum grace,
//! whichever is longer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::wire::{self as k, RevisionReport};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use keyrotor_testsupport::e2e::cluster;
use keyrotor_testsupport::e2e::realnode::{self, ROTATION, Stage};
use keyrotor_testsupport::e2e::scenario::{request_rotation, wait_stable};

const GRACE: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum Seen {
    Secret {
        name: String,
        revision: u64,
        accepted: BTreeSet<u64>,
        current: Option<u64>,
    },
    Pod {
        role: String,
        name: String,
        revision: Option<u64>,
    },
}

type Log = Arc<Mutex<Vec<(Instant, Seen)>>>;

fn record(client: &kube::Client, ns: &str) -> Log {
    let log: Log = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut s = watcher::watcher(secrets, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(s)) = s.next().await {
            let num = |key: &str| s.annotations().get(key).and_then(|v| v.parse().ok());
            let accepted = s
                .annotations()
                .get(k::ACCEPTED)
                .map(|a| a.split(',').filter_map(|v| v.parse().ok()).collect())
                .unwrap_or_default();
            let seen = Seen::Secret {
                name: s.name_any(),
                revision: num(k::REVISION).unwrap_or(0),
                accepted,
                current: num(k::CURRENT),
            };
            l1.lock().unwrap().push((Instant::now(), seen));
        }
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut s = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = s.next().await {
            let (Ok(Event::Apply(p)) | Ok(Event::InitApply(p))) = ev else {
                continue;
            };
            let role = p.labels().get("app").cloned().unwrap_or_default();
            let revision = RevisionReport::read(p.annotations(), ROTATION, &role).map(|r| r.0);
            let seen = Seen::Pod {
                role,
                name: p.name_any(),
                revision,
            };
            l2.lock().unwrap().push((Instant::now(), seen));
        }
    });
    log
}

/// Stage durations of one cycle to `version`, from the recorded changes.
fn stages(log: &[(Instant, Seen)], start: Instant, version: u64) -> Option<[Duration; 6]> {
    let mut pods: BTreeMap<(String, String), Option<u64>> = BTreeMap::new();
    // When each Secret took the new version, and at which revision.
    let mut staged: Option<(Instant, u64)> = None;
    let mut promoted: Option<(Instant, u64)> = None;
    let (mut loaded_v, mut loaded_p): (Option<Instant>, Option<Instant>) = (None, None);
    // Pod changes from before the start too: they are the pods' state then.
    for (t, seen) in log {
        match seen {
            Seen::Secret { .. } if *t < start => {}
            Seen::Secret {
                name,
                revision,
                accepted,
                current,
            } => {
                if name == "api-verifier" && staged.is_none() && accepted.contains(&version) {
                    staged = Some((*t, *revision));
                }
                if name == "api-key" && promoted.is_none() && *current == Some(version) {
                    promoted = Some((*t, *revision));
                }
                let single = accepted.len() == 1 && accepted.contains(&version);
                if name == "api-verifier" && single && loaded_p.is_some() {
                    let t0 = start;
                    let (s, v, p, l) = (staged?.0, loaded_v?, promoted?.0, loaded_p?);
                    let floor = (v - s) + (l - p).max(GRACE);
                    return Some([s - t0, v - s, p - v, l - p, *t - l, floor]);
                }
            }
            Seen::Pod {
                role,
                name,
                revision,
            } => {
                pods.insert((role.clone(), name.clone()), *revision);
            }
        }
        let all = |role: &str, min: u64| {
            let mut group = pods.iter().filter(|((r, _), _)| r == role).peekable();
            group.peek().is_some() && group.all(|(_, rev)| rev.is_some_and(|r| r >= min))
        };
        if let (None, Some((_, r))) = (loaded_v, staged)
            && all("verifier", r)
        {
            loaded_v = Some(*t);
        }
        if let (None, Some((_, r))) = (loaded_p, promoted)
            && all("presenter", r)
        {
            loaded_p = Some(*t);
        }
    }
    None
}

async fn measure(
    cluster: &'static cluster::Cluster,
    nudge: bool,
    cycles: u64,
) -> Vec<[Duration; 6]> {
    let ns = if nudge {
        "bench-nudge"
    } else {
        "bench-no-nudge"
    };
    let stage = Stage::start(
        cluster,
        ns,
        nudge,
        Path::new(env!("CARGO_BIN_EXE_keyrotor")),
    )
    .await;
    // The pods exist before recording starts: their first events seed the state.
    let log = record(&stage.client, &stage.ns.name);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut out = Vec::new();
    for i in 0..cycles {
        let start = Instant::now();
        request_rotation(
            &stage.client,
            &stage.ns.name,
            ROTATION,
            &format!("bench-{i}"),
        )
        .await;
        let limit = Duration::from_secs(600);
        wait_stable(&stage.client, &stage.ns.name, ROTATION, i + 2, limit).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let snapshot = log.lock().unwrap().clone();
        let Some(s) = stages(&snapshot, start, i + 2) else {
            eprintln!("nudge: cycle {i} could not be timed (missing events)");
            continue;
        };
        eprintln!(
            "{} cycle {}: {:.1?} (floor {:.1?})",
            if nudge { "nudge" } else { "no nudge" },
            i + 1,
            s[..5].iter().sum::<Duration>(),
            s[5]
        );
        out.push(s);
    }
    stage.uninstall(cluster);
    out
}

fn mean(rows: &[[Duration; 6]], i: usize) -> String {
    if rows.is_empty() {
        return "-".into();
    }
    let total: Duration = rows.iter().map(|r| r[i]).sum();
    format!("{:.2} s", (total / rows.len() as u32).as_secs_f64())
}

fn main() {
    let cycles: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(cluster) = cluster::get().await else {
            return;
        };
        if !realnode::real_nodes(cluster) {
            return;
        }
        let with = measure(cluster, true, cycles).await;
        let without = measure(cluster, false, cycles).await;
        let totals = |rows: &[[Duration; 6]]| -> Vec<[Duration; 6]> {
            rows.iter()
                .map(|r| {
                    let mut r = *r;
                    r[0] = r[..5].iter().sum();
                    r
                })
                .collect()
        };
        println!("\n{cycles} rotations each, Report mode, gracePeriod.minimum 1 s, 2 verifier + 2 presenter pods on one real kubelet");
        println!("{:<44}{:>12}{:>12}", "", "nudge", "no nudge");
        let rows = [
            ("rotation start → old version retired", None),
            ("  staging (operator writes verifiers' Secret)", Some(0)),
            ("  verifiers load and report", Some(1)),
            ("  promote (operator writes presenters' Secret)", Some(2)),
            ("  presenters load and report", Some(3)),
            ("  grace and retire", Some(4)),
            ("physical floor (loads, and grace)", Some(5)),
        ];
        for (label, i) in rows {
            let (a, b) = match i {
                Some(i) => (mean(&with, i), mean(&without, i)),
                None => (mean(&totals(&with), 0), mean(&totals(&without), 0)),
            };
            println!("{label:<44}{a:>12}{b:>12}");
        }
    });
}
