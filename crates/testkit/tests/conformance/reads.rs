//! Conformance of the in-memory Kubernetes API, continued: selectors, paging, watch,
//! collection and namespace deletion, discovery, the HTTP listener and event recording.
//! Each test names the apiserver rule it mirrors and fails if the fake stops honouring it.

use crate::support::*;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use keyrotor_testkit::{FakeApi, ResourceType};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{CustomResourceExt, Resource, ResourceExt};
use serde_json::json;
use std::time::Duration;

/// Rule: label selectors support =, ==, !=, in, notin, exists and !exists; kube sends
/// spaces as `+`, which the server decodes.
#[tokio::test]
async fn label_selectors() {
    bounded(async {
        let api = FakeApi::new();
        let pods: Api<Pod> = Api::default_namespaced(api.client());
        create_labelled_pods(&pods).await;
        let names = |sel: &'static str| {
            let pods = pods.clone();
            async move {
                let mut n: Vec<String> = pods
                    .list(&ListParams::default().labels(sel))
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .map(|p| p.name_any())
                    .collect();
                n.sort();
                n.join(",")
            }
        };
        assert_eq!(names("app=x").await, "a");
        assert_eq!(names("app==y").await, "b");
        assert_eq!(names("app!=x").await, "b,c");
        assert_eq!(names("app in (x, y)").await, "a,b");
        assert_eq!(names("app notin (x)").await, "b,c");
        assert_eq!(names("app").await, "a,b");
        assert_eq!(names("!app").await, "c");
        assert_eq!(names("app in (x,y),tier").await, "a");
        assert_eq!(
            err(pods
                .list(&ListParams::default().labels("app in x"))
                .await
                .unwrap_err())
            .0,
            400
        );
    })
    .await;
}

/// Rule: field selectors on metadata.name and metadata.namespace; unsupported fields are 400.
#[tokio::test]
async fn field_selectors() {
    bounded(async {
        let api = FakeApi::new();
        api.store().ensure_namespace("other");
        let client = api.client();
        for ns in ["default", "other"] {
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            for n in ["one", "two"] {
                cms.create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": n}})).unwrap(),
                )
                .await
                .unwrap();
            }
        }
        let all: Api<ConfigMap> = Api::all(client);
        let count = |sel: &'static str| {
            let all = all.clone();
            async move {
                all.list(&ListParams::default().fields(sel))
                    .await
                    .map(|l| l.items.len())
            }
        };
        assert_eq!(count("metadata.name=one").await.unwrap(), 2);
        assert_eq!(count("metadata.namespace=other").await.unwrap(), 2);
        assert_eq!(
            count("metadata.name=one,metadata.namespace!=other")
                .await
                .unwrap(),
            1
        );
        assert_eq!(err(count("data.x=1").await.unwrap_err()).0, 400);
    })
    .await;
}

/// Rule: list paging with limit/continue returns a consistent snapshot at the first
/// page's resourceVersion.
#[tokio::test]
async fn list_paging_is_consistent() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        for i in 0..5 {
            cms.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap(),
            )
            .await
            .unwrap();
        }
        let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(first.items.len(), 2);
        cms.delete("c4", &DeleteParams::default()).await.unwrap();
        let mut names: Vec<String> = first.items.iter().map(|c| c.name_any()).collect();
        let mut token = first.metadata.continue_.clone();
        while let Some(t) = token.filter(|t| !t.is_empty()) {
            let page = cms
                .list(&ListParams::default().limit(2).continue_token(&t))
                .await
                .unwrap();
            names.extend(page.items.iter().map(|c| c.name_any()));
            token = page.metadata.continue_;
        }
        assert_eq!(
            names,
            vec!["c0", "c1", "c2", "c3", "c4"],
            "snapshot still shows c4"
        );
    })
    .await;
}

/// Rule: a watch from a resourceVersion replays every later change in order.
#[tokio::test]
async fn watch_replays_from_resource_version() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let c = cms
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
            )
            .await
            .unwrap();
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .unwrap();
        cms.delete("c", &DeleteParams::default()).await.unwrap();
        let mut w = cms
            .watch(&WatchParams::default(), &c.resource_version().unwrap())
            .await
            .unwrap()
            .boxed();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Modified(o) if o.data.is_some()));
        assert!(matches!(next_event(&mut w).await, WatchEvent::Deleted(_)));
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "d"}})).unwrap(),
        )
        .await
        .unwrap();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Added(o) if o.name_any() == "d"));
    })
    .await;
}

/// Rule: with allowWatchBookmarks the server sends BOOKMARK events carrying a current
/// resourceVersion.
#[tokio::test]
async fn watch_sends_bookmarks() {
    bounded(async {
        let api = FakeApi::with_options(100, Duration::from_millis(50));
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let mut w = cms
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        let bm = within(async {
            loop {
                if let WatchEvent::Bookmark(b) = w.next().await.unwrap().unwrap() {
                    return b;
                }
            }
        })
        .await;
        assert_eq!(
            bm.metadata.resource_version,
            api.store().current_rv().to_string()
        );
    })
    .await;
}

/// Rule: a watch from a compacted resourceVersion gets an ERROR event with a 410 Status.
#[tokio::test]
async fn watch_from_compacted_version_is_410() {
    bounded(async {
        let api = FakeApi::with_options(2, Duration::from_secs(5));
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let c = cms
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
            )
            .await
            .unwrap();
        for i in 0..5 {
            cms.patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"i": i.to_string()}})),
            )
            .await
            .unwrap();
        }
        let mut w = cms
            .watch(&WatchParams::default(), &c.resource_version().unwrap())
            .await
            .unwrap()
            .boxed();
        match within(w.next()).await.unwrap().unwrap() {
            WatchEvent::Error(s) => assert_eq!(s.code, 410),
            other => panic!("expected 410 ERROR, got {other:?}"),
        }
    })
    .await;
}

/// Rule: a watch with a label selector sees objects enter (ADDED) and leave (DELETED) the
/// selection when their labels change.
#[tokio::test]
async fn selective_watch_sees_objects_enter_and_leave() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        let mut w = cms
            .watch(&WatchParams::default().labels("sel=yes"), "0")
            .await
            .unwrap()
            .boxed();
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap();
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sel": "yes"}}})),
        )
        .await
        .unwrap();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Added(_)));
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
        )
        .await
        .unwrap();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Deleted(_)));
    })
    .await;
}

/// Rule: deletecollection deletes what matches the selector.
#[tokio::test]
async fn delete_collection() {
    bounded(async {
        let api = FakeApi::new();
        let cms: Api<ConfigMap> = Api::default_namespaced(api.client());
        for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
            cms.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": n, "labels": {"l": l}}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        }
        cms.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("l=x"),
        )
        .await
        .unwrap();
        let left: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(left, vec!["c"]);
    })
    .await;
}

/// Rule: deleting a namespace deletes its contents.
#[tokio::test]
async fn namespace_deletion_removes_contents() {
    bounded(async {
        let api = FakeApi::new();
        let client = api.client();
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap(),
        )
        .await
        .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "gone");
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap();
        nss.delete("gone", &DeleteParams::default()).await.unwrap();
        assert_eq!(err(cms.get("c").await.unwrap_err()).0, 404);
    })
    .await;
}

/// Rule (discovery): kube's discovery finds built-in and registered custom resources.
#[tokio::test]
async fn discovery_lists_builtins_and_custom_resources() {
    bounded(async {
        let api = api_with_widgets();
        let d = within(kube::Discovery::new(api.client()).run())
            .await
            .unwrap();
        assert!(
            d.has_group("apps")
                && d.has_group("coordination.k8s.io")
                && d.has_group("events.k8s.io")
        );
        let (ar, caps) = d
            .resolve_gvk(&kube::api::GroupVersionKind::gvk(
                "test.keyrotor.dev",
                "v1",
                "Widget",
            ))
            .unwrap();
        assert_eq!(ar.plural, "widgets");
        assert!(
            caps.subresources.iter().any(|(s, _)| s.plural == "status")
                || caps.scope == kube::discovery::Scope::Namespaced
        );
    })
    .await;
}

/// Rule: creating a CustomResourceDefinition through the API makes its resource served.
#[tokio::test]
async fn crd_created_through_api_is_served() {
    bounded(async {
        let api = FakeApi::new();
        let client = api.client();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &Widget::crd())
            .await
            .unwrap();
        let widgets: Api<Widget> = Api::default_namespaced(client);
        widgets
            .create(
                &PostParams::default(),
                &Widget::new("w", WidgetSpec { size: 3 }),
            )
            .await
            .unwrap();
        assert_eq!(widgets.get("w").await.unwrap().spec.size, 3);
    })
    .await;
}

/// Rule: the other built-in kinds the operator uses are served (Leases, Events, StatefulSets, DaemonSets).
#[tokio::test]
async fn builtin_kinds_are_served() {
    bounded(async {
        use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
        use k8s_openapi::api::coordination::v1::Lease;
        use k8s_openapi::api::events::v1::Event;
        let api = FakeApi::new();
        let c = api.client();
        let meta = json!({"metadata": {"name": "x"}});
        Api::<Lease>::default_namespaced(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(meta.clone()).unwrap(),
            )
            .await
            .unwrap();
        Api::<Event>::default_namespaced(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "x"}, "eventTime": "2026-01-01T00:00:00.000000Z"}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        Api::<k8s_openapi::api::core::v1::Event>::default_namespaced(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}, "involvedObject": {}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        Api::<StatefulSet>::default_namespaced(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "x"}, "spec": {"selector": {}, "template": {}}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        Api::<DaemonSet>::default_namespaced(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "x"}, "spec": {"selector": {}, "template": {}}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            Api::<Lease>::default_namespaced(c)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        // A registered type by hand works the same way.
        api.register(ResourceType::new("example.com", "v1", "things", "Thing").cluster_scoped());
        assert!(
            api.store()
                .find_type("example.com", "v1", "things")
                .is_some()
        );
    })
    .await;
}

/// The loopback listener serves the same API over HTTP, reachable through a kubeconfig.
#[tokio::test]
async fn http_listener_and_kubeconfig() {
    bounded(async {
        let api = FakeApi::new();
        let server = api.listen().await.unwrap();
        assert!(server.addr().ip().is_loopback());
        let dir = std::env::temp_dir().join(format!("testkit-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        server.write_kubeconfig(&path, "default").unwrap();
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let secrets: Api<Secret> = Api::default_namespaced(client);
        within(secrets.create(
            &PostParams::default(),
            &secret("over-http", json!({"k": "v"})),
        ))
        .await
        .unwrap();
        assert!(
            api.store()
                .peek("", "secrets", Some("default"), "over-http")
                .is_some()
        );
        // A raw request with a User-Agent (as kubectl sends): it names the default field manager.
        let req = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(http::header::USER_AGENT, "kubectl/v1.33.0 (linux/amd64)")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(
                serde_json::to_vec(
                    &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"}}),
                )
                .unwrap(),
            )
            .unwrap();
        let raw = api.client().request_text(req).await.unwrap();
        assert!(raw.contains("\"raw\""));
        let log = api.faults().write_log();
        let last = log.last().unwrap();
        assert_eq!(
            (last.user_agent.as_str(), last.field_manager.as_str()),
            ("kubectl/v1.33.0 (linux/amd64)", "kubectl")
        );
        let mut w = secrets
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        assert!(matches!(next_event(&mut w).await, WatchEvent::Added(_)));
        let _ = std::fs::remove_dir_all(dir);
    })
    .await;
}

/// kube-runtime's event Recorder works: the first publish creates an events.k8s.io/v1
/// Event, a repeat patches its series count instead of creating another.
#[tokio::test]
async fn event_recorder_creates_then_patches_series() {
    bounded(async {
        use k8s_openapi::api::events::v1::Event as K8sEvent;
        use kube::runtime::events::{Event, EventType, Recorder, Reporter};
        let api = api_with_widgets();
        let client = api.client();
        let widgets: Api<Widget> = Api::default_namespaced(client.clone());
        let w = widgets
            .create(
                &PostParams::default(),
                &Widget::new("w", WidgetSpec { size: 1 }),
            )
            .await
            .unwrap();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "keyrotor".into(),
                instance: None,
            },
        );
        let ev = Event {
            type_: EventType::Normal,
            reason: "Rotated".into(),
            note: Some("rotated".into()),
            action: "Rotate".into(),
            secondary: None,
        };
        let reference = w.object_ref(&());
        within(recorder.publish(&ev, &reference)).await.unwrap();
        within(recorder.publish(&ev, &reference)).await.unwrap();
        let events = Api::<K8sEvent>::default_namespaced(client)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(2));
        assert_eq!(events[0].reason.as_deref(), Some("Rotated"));
    })
    .await;
}
