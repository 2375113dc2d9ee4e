//! Metadata-only reads (`PartialObjectMetadata`), as kube's `*_metadata` calls and
//! `kube::runtime::metadata_watcher` request them with
//! `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`.

use crate::support::*;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use keyrotor_testkit::FakeApi;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "x"}},
        "data": {"key": "c2VjcmV0"},
    }))
    .unwrap()
}

/// Rule (apiserver content negotiation): `as=PartialObjectMetadataList` answers a
/// `meta.k8s.io/v1` list of metadata-only items, `as=PartialObjectMetadata` a single one;
/// Secret data never leaves the server; an `as=` the server cannot produce is 406.
#[tokio::test]
async fn metadata_only_get_and_list() {
    bounded(async {
        let api = FakeApi::new();
        let client = api.client();
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        secrets
            .create(&PostParams::default(), &secret("s"))
            .await
            .unwrap();
        let list_mime = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        let (code, list) = raw_get(
            &client,
            "/api/v1/namespaces/default/secrets",
            Some(list_mime),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert!(list["metadata"]["resourceVersion"].is_string());
        assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(list["items"][0]["metadata"]["name"], "s");
        assert!(list["items"][0].get("data").is_none(), "{list}");
        let one_mime = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        let (code, one) = raw_get(
            &client,
            "/api/v1/namespaces/default/secrets/s",
            Some(one_mime),
        )
        .await;
        assert_eq!(
            (code, one["kind"].as_str()),
            (200, Some("PartialObjectMetadata"))
        );
        assert!(one.get("data").is_none());
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        let (code, _) = raw_get(&client, "/api/v1/namespaces/default/secrets", Some(table)).await;
        assert_eq!(code, 406);

        // kube's typed metadata calls.
        let metas = secrets.list_metadata(&ListParams::default()).await.unwrap();
        assert_eq!(metas.items.len(), 1);
        assert_eq!(
            metas.items[0].types.as_ref().map(|t| t.kind.as_str()),
            Some("PartialObjectMetadata")
        );
        let m = secrets.get_metadata("s").await.unwrap();
        assert_eq!(m.labels()["app"], "x");
        let patched = secrets
            .patch_metadata(
                "s",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
            )
            .await
            .unwrap();
        assert_eq!(patched.annotations()["a"], "b");
        assert_eq!(
            patched.types.map(|t| t.kind),
            Some("PartialObjectMetadata".to_string())
        );
    })
    .await;
}

/// Rule: a metadata watch sends `PartialObjectMetadata` objects in its events.
#[tokio::test]
async fn metadata_watch_events_carry_metadata_only() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let list = secrets.list_metadata(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let mut w = secrets
            .watch_metadata(&WatchParams::default().disable_bookmarks(), &rv)
            .await
            .unwrap()
            .boxed();
        secrets
            .create(&PostParams::default(), &secret("s"))
            .await
            .unwrap();
        match within(w.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(m) => {
                assert_eq!(m.name_any(), "s");
                assert_eq!(m.types.unwrap().kind, "PartialObjectMetadata");
            }
            other => panic!("expected ADDED, got {other:?}"),
        }
    })
    .await;
}

/// Follows a metadata-only watcher stream through creations, a cut stream and a 410.
async fn follows_changes<S>(api: &FakeApi, stream: S)
where
    S: futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>
        + Send
        + 'static,
{
    let secrets: Api<Secret> = Api::default_namespaced(api.client());
    secrets
        .create(&PostParams::default(), &secret("a"))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(
        stream
            .default_backoff()
            .touched_objects()
            .for_each(move |o| {
                let _ = tx.send(o.map(|m| (m.name_any(), m.types.map(|t| t.kind))));
                async {}
            }),
    );
    for (step, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        match step {
            2 => api.faults().cut_watches(),
            3 => {
                api.store().compact();
                api.faults().cut_watches();
            }
            _ => {}
        }
        if name != "a" {
            secrets
                .create(&PostParams::default(), &secret(name))
                .await
                .unwrap();
        }
        within(async {
            while let Some(got) = rx.recv().await {
                if let Ok((n, kind)) = got
                    && n == name
                {
                    assert_eq!(kind.as_deref(), Some("PartialObjectMetadata"));
                    return;
                }
            }
            panic!("watcher ended");
        })
        .await;
    }
    task.abort();
}

/// kube 5's way: `watcher(Api<PartialObjectMeta<K>>, Config::default())` lists and watches
/// metadata only and survives a cut stream and a 410 Gone (relist).
#[tokio::test]
async fn partial_object_meta_watcher_follows_changes() {
    bounded(async {
        let api = FakeApi::new();
        let metas: Api<PartialObjectMeta<Secret>> = Api::default_namespaced(api.client());
        follows_changes(&api, watcher(metas, watcher::Config::default())).await;
    })
    .await;
}

/// The deprecated `metadata_watcher` behaves the same.
#[tokio::test]
#[allow(deprecated)]
async fn metadata_watcher_follows_changes() {
    bounded(async {
        let api = FakeApi::new();
        let secrets: Api<Secret> = Api::default_namespaced(api.client());
        let stream = kube::runtime::metadata_watcher(secrets, watcher::Config::default());
        follows_changes(&api, stream).await;
    })
    .await;
}
