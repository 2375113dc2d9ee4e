//! Fault injection of the in-memory Kubernetes API, and kube-runtime machinery (watcher,
//! Controller) running against it, including through cut streams, 410 Gone, failing
//! writes and a crash between any two writes.

use crate::support::*;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use keyrotor_testkit::{FakeApi, Fault};
use kube::api::{
    Api, GetParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResourceExt, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Fault: the next writes fail with 409, 429, 500 and change nothing; then writes succeed.
#[tokio::test]
async fn fail_next_writes_with_status_codes() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        for c in [409, 429, 500] {
            api.faults().fail_next_writes(1, Fault::Status(c));
        }
        for expected in [409, 429, 500] {
            assert_eq!(
                code(
                    cms.create(&PostParams::default(), &cm("c"))
                        .await
                        .unwrap_err()
                ),
                expected
            );
        }
        assert!(
            api.store()
                .peek("", "configmaps", Some("default"), "c")
                .is_none()
        );
        cms.create(&PostParams::default(), &cm("c")).await.unwrap();
        // Reads are never failed by write faults.
        api.faults().fail_next_writes(1, Fault::Status(500));
        cms.get("c").await.unwrap();
    })
    .await;
}

/// Fault: writes failed for one field manager only; other managers' writes pass meanwhile.
#[tokio::test]
async fn fail_next_writes_by_one_manager() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        api.faults()
            .fail_next_writes_by("keyrotor", 2, Fault::Status(409));
        let by = |m: &str| PostParams {
            field_manager: Some(m.into()),
            ..Default::default()
        };
        cms.create(&by("kubelet"), &cm("a")).await.unwrap();
        for _ in 0..2 {
            let e = cms.create(&by("keyrotor"), &cm("b")).await.unwrap_err();
            assert_eq!(code(e), 409);
        }
        cms.create(&by("keyrotor"), &cm("b")).await.unwrap();
        let refused: Vec<u16> = api
            .faults()
            .writes_by_manager("keyrotor")
            .iter()
            .map(|w| w.code)
            .collect();
        assert_eq!(refused, [409, 409, 201]);
    })
    .await;
}

/// Fault: a seeded fraction of writes fails, reproducibly for the same seed.
#[tokio::test]
async fn fail_fraction_is_deterministic() {
    bounded(async {
        async fn pattern(seed: u64) -> Vec<bool> {
            let api = FakeApi::new();
            api.faults()
                .fail_fraction_of_writes(0.5, Fault::Status(500), seed);
            let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
            let mut out = vec![];
            for i in 0..40 {
                out.push(
                    cms.create(&PostParams::default(), &cm(&format!("c{i}")))
                        .await
                        .is_ok(),
                );
            }
            out
        }
        let a = pattern(7).await;
        assert_eq!(a, pattern(7).await);
        assert_ne!(a, pattern(8).await);
        let ok = a.iter().filter(|x| **x).count();
        assert!((8..=32).contains(&ok), "about half succeed, got {ok}");
    })
    .await;
}

/// Fault: a write that never gets an answer (the client must time out) and is not applied.
#[tokio::test]
async fn hanging_write_never_answers() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        api.faults().fail_next_writes(1, Fault::Hang);
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            cms.create(&PostParams::default(), &cm("c")),
        )
        .await;
        assert!(r.is_err(), "the request must not complete");
        assert!(
            api.store()
                .peek("", "configmaps", Some("default"), "c")
                .is_none()
        );
    })
    .await;
}

/// Fault: a timeout (504) without effect, and a lost response: applied, yet the client sees 504.
#[tokio::test]
async fn timeouts_with_and_without_effect() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        api.faults()
            .fail_next_writes(1, Fault::Timeout(Duration::from_millis(50)));
        assert_eq!(
            code(
                cms.create(&PostParams::default(), &cm("a"))
                    .await
                    .unwrap_err()
            ),
            504
        );
        assert!(
            api.store()
                .peek("", "configmaps", Some("default"), "a")
                .is_none()
        );
        api.faults()
            .fail_next_writes(1, Fault::AppliedThenTimeout(Duration::from_millis(50)));
        assert_eq!(
            code(
                cms.create(&PostParams::default(), &cm("b"))
                    .await
                    .unwrap_err()
            ),
            504
        );
        assert!(
            api.store()
                .peek("", "configmaps", Some("default"), "b")
                .is_some()
        );
        // Retrying the create now answers AlreadyExists, the classic idempotency trap.
        assert_eq!(
            code(
                cms.create(&PostParams::default(), &cm("b"))
                    .await
                    .unwrap_err()
            ),
            409
        );
    })
    .await;
}

/// Fault: every response is delayed.
#[tokio::test]
async fn delayed_responses() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        api.faults().delay_responses(Duration::from_millis(150));
        let start = Instant::now();
        cms.list(&ListParams::default()).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(150));
    })
    .await;
}

/// Fault: stale reads serve a view N writes behind; writes with a stale resourceVersion
/// then conflict, exactly what a controller reading a lagging cache experiences.
#[tokio::test]
async fn stale_reads_lag_behind_writes() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        cms.create(&PostParams::default(), &cm("c")).await.unwrap();
        let mut w = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        api.faults().serve_stale_reads(1);
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "1"}})),
        )
        .await
        .unwrap();
        // Reads a real apiserver serves from its watch cache lag…
        let stale = cms.get_with("c", &GetParams::any()).await.unwrap();
        assert!(
            stale.data.is_none(),
            "get with resourceVersion=0 serves the version before the last write"
        );
        assert!(
            cms.list(&ListParams::default().match_any())
                .await
                .unwrap()
                .items[0]
                .data
                .is_none()
        );
        let rv: u64 = stale.resource_version().unwrap().parse().unwrap();
        let newer = ListParams::default()
            .at(&(rv + 1).to_string())
            .matching(kube::api::VersionMatch::NotOlderThan);
        assert!(
            cms.list(&newer).await.unwrap().items[0].data.is_some(),
            "NotOlderThan a version the view has not reached waits for it"
        );
        // …consistent reads (no resourceVersion) never do.
        assert!(cms.get("c").await.unwrap().data.is_some());
        assert!(
            cms.list(&ListParams::default()).await.unwrap().items[0]
                .data
                .is_some()
        );
        let mut upd = stale.clone();
        upd.data = Some([("v".to_string(), "2".to_string())].into());
        assert_eq!(
            code(
                cms.replace("c", &PostParams::default(), &upd)
                    .await
                    .unwrap_err()
            ),
            409
        );
        // The watch holds the latest event back until it is one write old.
        let first = within_for(T, async {
            loop {
                match w.try_next().await.unwrap().unwrap() {
                    WatchEvent::Bookmark(_) => continue,
                    e => return e,
                }
            }
        })
        .await;
        assert!(matches!(first, WatchEvent::Added(ref o) if o.data.is_none()));
        let early = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match w.try_next().await {
                    Ok(Some(WatchEvent::Bookmark(_))) => continue,
                    other => return other,
                }
            }
        })
        .await;
        assert!(early.is_err(), "MODIFIED must be held back while stale");
        api.faults().serve_stale_reads(0);
        assert!(cms.get("c").await.unwrap().data.is_some());
    })
    .await;
}

/// Fault: cutting watches ends every open watch stream.
#[tokio::test]
async fn cut_watches_ends_streams() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let mut w = cms
            .watch(&WatchParams::default().disable_bookmarks(), "0")
            .await
            .unwrap()
            .boxed();
        api.faults().cut_watches();
        let end = within_for(T, w.try_next()).await;
        assert!(matches!(end, Ok(None) | Err(_)), "stream ended: {end:?}");
    })
    .await;
}

/// Fault: halting after the k-th write makes every later request fail (503) until resumed,
/// and notifies the test; the write log counts every write request.
#[tokio::test]
async fn halt_after_kth_write_and_write_log() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        api.faults().halt_after_writes(2);
        cms.create(&PostParams::default(), &cm("a")).await.unwrap();
        assert!(!api.faults().is_halted());
        cms.patch(
            "a",
            &PatchParams::apply("mgr"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
        )
        .await
        .unwrap();
        within_for(T, api.faults().halted()).await;
        assert_eq!(code(cms.get("a").await.unwrap_err()), 503);
        assert_eq!(
            code(
                cms.create(&PostParams::default(), &cm("b"))
                    .await
                    .unwrap_err()
            ),
            503
        );
        api.faults().resume();
        cms.get("a").await.unwrap();
        // An identical re-apply is logged but changes nothing.
        cms.patch(
            "a",
            &PatchParams::apply("mgr"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
        )
        .await
        .unwrap();
        let log = api.faults().write_log();
        assert_eq!(log.len(), 3);
        assert_eq!(
            (
                log[0].verb.as_str(),
                log[0].resource.as_str(),
                log[0].name.as_str()
            ),
            ("create", "configmaps", "")
        );
        assert_eq!(
            (
                log[1].verb.as_str(),
                log[1].field_manager.as_str(),
                log[1].namespace.as_deref()
            ),
            ("apply", "mgr", Some("default"))
        );
        assert!(log[1].changed && !log[2].changed);
        assert_eq!(
            log[0].field_manager, "unknown",
            "no fieldManager and no User-Agent in process"
        );
        assert_eq!(api.faults().effective_writes().len(), 2);
    })
    .await;
}

type WatcherRx =
    tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// Waits until the watcher delivers `want`; returns how many 410 errors it saw meanwhile.
async fn saw_object(rx: &mut WatcherRx, want: &str) -> usize {
    within_for(T, async {
        let mut errors_410 = 0;
        loop {
            match rx.recv().await.expect("watcher ended") {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o))
                    if o.name_any() == want =>
                {
                    return errors_410;
                }
                Err(watcher::Error::WatchError(s)) if s.code == 410 => errors_410 += 1,
                _ => {}
            }
        }
    })
    .await
}

/// kube-runtime's watcher survives a cut stream (re-watches from its resourceVersion) and a
/// 410 Gone (relists), and keeps delivering changes.
#[tokio::test]
async fn watcher_survives_cut_stream_and_410() {
    bounded(async {
        let api = FakeApi::with_options(3, Duration::from_secs(3600));
        let client = api.client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = watcher(cms.clone(), watcher::Config::default());
        let task = tokio::spawn(async move {
            let mut stream = stream.boxed();
            while let Some(ev) = stream.next().await {
                let _ = tx.send(ev);
            }
        });
        cms.create(&PostParams::default(), &cm("one"))
            .await
            .unwrap();
        saw_object(&mut rx, "one").await;
        api.faults().cut_watches();
        cms.create(&PostParams::default(), &cm("two"))
            .await
            .unwrap();
        saw_object(&mut rx, "two").await;
        // Make the watcher's resourceVersion fall out of the retained history, then cut:
        // it re-watches from a compacted version, gets 410 and relists.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..5 {
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}}))
                        .unwrap(),
                )
                .await
                .unwrap();
        }
        api.faults().cut_watches();
        cms.create(&PostParams::default(), &cm("three"))
            .await
            .unwrap();
        let errors = saw_object(&mut rx, "three").await;
        assert!(errors >= 1, "the watcher went through 410 Gone");
        task.abort();
    })
    .await;
}

/// kube-runtime's watcher with streaming lists (sendInitialEvents) gets the initial state
/// ended by the `k8s.io/initial-events-end` bookmark.
#[tokio::test]
async fn watcher_streaming_list() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        cms.create(&PostParams::default(), &cm("pre"))
            .await
            .unwrap();
        let mut s = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
        let mut names = vec![];
        within_for(T, async {
            loop {
                match s.try_next().await.unwrap().unwrap() {
                    watcher::Event::InitApply(o) => names.push(o.name_any()),
                    watcher::Event::InitDone => break,
                    _ => {}
                }
            }
        })
        .await;
        assert_eq!(names, vec!["pre"]);
    })
    .await;
}

#[derive(Clone)]
struct Ctx {
    client: kube::Client,
    reconciles: Arc<AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(#[from] kube::Error);

/// Reconciler: an owned Secret carrying the size, and `status.observed = spec.size`, both
/// written with server-side apply.
async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = w.namespace().unwrap();
    let name = w.name_any();
    let pp = PatchParams::apply("widget-ctl").force();
    let owner = w.controller_owner_ref(&()).unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-key"), "ownerReferences": [owner]},
        "stringData": {"size": w.spec.size.to_string()},
    });
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(&format!("{name}-key"), &pp, &Patch::Apply(secret))
        .await?;
    let status = json!({"apiVersion": "test.keyrotor.dev/v1", "kind": "Widget", "status": {"observed": w.spec.size}});
    Api::<Widget>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&name, &pp, &Patch::Apply(status))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Widget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(20))
}

fn run_controller(api: &FakeApi) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let client = api.client();
    let reconciles = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: reconciles.clone(),
    });
    let widgets: Api<Widget> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::all(client);
    let task = tokio::spawn(
        Controller::new(widgets, watcher::Config::default())
            .owns(secrets, watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    (task, reconciles)
}

async fn converged(api: &FakeApi, size: i32) -> bool {
    let w = api
        .store()
        .peek("test.keyrotor.dev", "widgets", Some("default"), "w");
    let s = api.store().peek("", "secrets", Some("default"), "w-key");
    let observed = w.and_then(|w| w.pointer("/status/observed").and_then(|v| v.as_i64()));
    let secret_size = s.and_then(|s| {
        s.pointer("/data/size")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    let encoded = match size {
        3 => "Mw==",
        4 => "NA==",
        _ => unreachable!(),
    };
    observed == Some(i64::from(size)) && secret_size.as_deref() == Some(encoded)
}

/// A kube-runtime Controller converges on the fake, then stays quiet: its own status and
/// Secret writes are no-ops the second time, so they do not retrigger reconciles.
#[tokio::test]
async fn controller_converges_and_goes_quiet() {
    bounded(async {
        let api = FakeApi::new();
        api.register_crd(&Widget::crd());
        let (task, reconciles) = run_controller(&api);
        let widgets: Api<Widget> = Api::default_namespaced(api.client());
        widgets
            .create(
                &PostParams::default(),
                &Widget::new("w", WidgetSpec { size: 3 }),
            )
            .await
            .unwrap();
        eventually("converged to 3", T, || async { converged(&api, 3).await }).await;
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 4}})),
            )
            .await
            .unwrap();
        eventually("converged to 4", T, || async { converged(&api, 4).await }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (r, w) = (
            reconciles.load(Ordering::SeqCst),
            api.faults().effective_writes().len(),
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            reconciles.load(Ordering::SeqCst),
            r,
            "no reconcile loop at steady state"
        );
        assert_eq!(
            api.faults().effective_writes().len(),
            w,
            "steady state makes no effective writes"
        );
        assert!(r < 20, "reconciles stayed bounded: {r}");
        task.abort();
    })
    .await;
}

/// A Controller converges despite a seeded 30% of writes failing with 500 / 429 / 409.
#[tokio::test]
async fn controller_converges_through_write_failures() {
    bounded(async {
        for (seed, fault) in [
            (1, Fault::Status(500)),
            (2, Fault::Status(429)),
            (3, Fault::Status(409)),
        ] {
            let api = FakeApi::new();
            api.register_crd(&Widget::crd());
            let widgets: Api<Widget> = Api::default_namespaced(api.client());
            widgets
                .create(
                    &PostParams::default(),
                    &Widget::new("w", WidgetSpec { size: 3 }),
                )
                .await
                .unwrap();
            api.faults().fail_fraction_of_writes(0.3, fault, seed);
            let (task, _) = run_controller(&api);
            eventually("converged to 3", T, || async { converged(&api, 3).await }).await;
            task.abort();
        }
    })
    .await;
}

/// Crash between any two writes: halt after write k, kill the controller, resume with a
/// fresh one; it must converge from whatever state the crash left.
#[tokio::test]
async fn controller_recovers_from_crash_at_every_write() {
    bounded(async {
        for k in 1..=3u64 {
            let api = FakeApi::new();
            api.register_crd(&Widget::crd());
            let widgets: Api<Widget> = Api::default_namespaced(api.client());
            widgets
                .create(
                    &PostParams::default(),
                    &Widget::new("w", WidgetSpec { size: 3 }),
                )
                .await
                .unwrap();
            let before = api.faults().write_count();
            api.faults().halt_after_writes(before + k);
            let (task, _) = run_controller(&api);
            tokio::select! {
                _ = api.faults().halted() => {}
                _ = tokio::time::sleep(T) => panic!("controller never reached write {k}"),
            }
            task.abort();
            let _ = task.await;
            api.faults().resume();
            let (task, _) = run_controller(&api);
            eventually("converged to 3", T, || async { converged(&api, 3).await }).await;
            task.abort();
        }
    })
    .await;
}
