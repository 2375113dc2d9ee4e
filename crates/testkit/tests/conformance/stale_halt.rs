//! Fault semantics a crash/staleness test depends on: the exact behaviour of a halt after
//! the k-th write, counting writes by field manager, and a watcher on a lagging view
//! catching up once the lag is removed.

use crate::support::*;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use keyrotor_testkit::FakeApi;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::time::Duration;

fn apply(v: &str) -> Patch<serde_json::Value> {
    Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": v}}))
}

/// Halt semantics: writes up to k answer normally; write k+1 is answered at once with 503
/// ServiceUnavailable, has no effect and is not counted; reads are 503 too; after resume
/// the count continues from k.
#[tokio::test]
async fn halt_refuses_write_k_plus_1_immediately_without_counting_it() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let pp = PatchParams::apply("keyrotor");
        let k = api.faults().write_count() + 2;
        api.faults().halt_after_writes(k);
        cms.create(&PostParams::default(), &cm("a")).await.unwrap();
        cms.patch("a", &pp, &apply("1")).await.unwrap(); // write k: answered normally
        assert!(api.faults().is_halted());
        let refused =
            tokio::time::timeout(Duration::from_secs(2), cms.patch("a", &pp, &apply("2")))
                .await
                .expect("a refused write is answered at once, it does not hang")
                .unwrap_err();
        match refused {
            kube::Error::Api(s) => {
                assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"))
            }
            other => panic!("expected 503, got {other:?}"),
        }
        assert_eq!(code(cms.get("a").await.unwrap_err()), 503);
        assert_eq!(
            api.faults().write_count(),
            k,
            "refused writes are not counted"
        );
        api.faults().resume();
        let a = cms.get("a").await.unwrap();
        assert_eq!(a.data.unwrap()["v"], "1", "write k+1 had no effect");
        cms.patch("a", &pp, &apply("3")).await.unwrap();
        assert_eq!(api.faults().write_count(), k + 1);
    })
    .await;
}

/// Writes are counted per field manager: the `fieldManager` query parameter when sent
/// (SSA always sends it; `PostParams`/`PatchParams` may), else `unknown` in process.
#[tokio::test]
async fn writes_counted_by_field_manager() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let before = api.faults().write_count();
        cms.create(&PostParams::default(), &cm("a")).await.unwrap();
        let pp = PatchParams::apply("keyrotor");
        cms.patch("a", &pp, &apply("1")).await.unwrap();
        cms.patch("a", &pp, &apply("1")).await.unwrap(); // a no-op, still a write request
        let named = PostParams {
            field_manager: Some("keyrotor".into()),
            ..Default::default()
        };
        cms.create(&named, &cm("b")).await.unwrap();
        let by = api.faults().write_counts_by_manager();
        assert_eq!(by.get("keyrotor"), Some(&3));
        assert_eq!(by.get("unknown"), Some(&1));
        let mine = api.faults().writes_by_manager("keyrotor");
        assert_eq!(
            mine.iter().map(|w| w.verb.as_str()).collect::<Vec<_>>(),
            ["apply", "apply", "create"]
        );
        assert_eq!(mine.iter().filter(|w| w.changed).count(), 2);
        assert_eq!(api.faults().write_count(), before + 4);
    })
    .await;
}

/// Waits until the reflector store holds `name` with data `v` (or gives up after STEP).
async fn store_shows(store: &Store<ConfigMap>, name: &str, v: &str) -> bool {
    let deadline = tokio::time::Instant::now() + STEP;
    while tokio::time::Instant::now() < deadline {
        let hit = store.state().iter().any(|c| {
            c.name_any() == name
                && c.data
                    .as_ref()
                    .and_then(|d| d.get("v"))
                    .is_some_and(|x| x == v)
        });
        if hit {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Stale reads: a reflector started on a lagging view (its list and watch both lag) does
/// not see the latest writes; once the lag is removed it catches up, without a restart.
#[tokio::test]
async fn watcher_on_lagging_view_catches_up() {
    bounded(async {
        for lag_before_start in [true, false] {
            let api = FakeApi::new();
            let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
            let pp = PatchParams::apply("t");
            cms.patch("a", &pp, &apply("0")).await.unwrap();
            for other in ["b", "c", "d"] {
                cms.create(&PostParams::default(), &cm(other))
                    .await
                    .unwrap();
            }
            if lag_before_start {
                api.faults().serve_stale_reads(3);
            }
            let (store, writer) = reflector::store();
            let task = tokio::spawn(
                reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default()))
                    .default_backoff()
                    .for_each(|_| async {}),
            );
            assert!(store_shows(&store, "a", "0").await);
            api.faults().serve_stale_reads(3);
            for v in ["1", "2", "3"] {
                cms.patch("a", &pp, &apply(v)).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let seen = store.get(&reflector::ObjectRef::new("a").within("default"));
            assert_eq!(
                seen.unwrap().data.as_ref().unwrap()["v"],
                "0",
                "the last 3 writes are not visible yet"
            );
            api.faults().serve_stale_reads(0);
            assert!(store_shows(&store, "a", "3").await, "caught up");
            task.abort();
        }
    })
    .await;
}
