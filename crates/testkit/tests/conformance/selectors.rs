//! Label and field selectors as they arrive on the wire: kube's form encoding (`+` for
//! spaces, `%2C`, `%28`, `%21`, `%3D`), hand-written percent-encoding, and set-based forms.

use crate::support::*;

use k8s_openapi::api::core::v1::Pod;
use keyrotor_testkit::FakeApi;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

async fn setup() -> (FakeApi, kube::Client) {
    let api = FakeApi::new();
    let client = api.client();
    create_labelled_pods(&Api::default_namespaced(client.clone())).await;
    (api, client)
}

/// Lists pods with a raw (already encoded) query; returns (code, sorted names).
async fn raw_list(client: &kube::Client, query: &str) -> (u16, String) {
    let uri = format!("/api/v1/namespaces/default/pods?{query}");
    let (code, v) = raw_get(client, &uri, None).await;
    let mut names: Vec<&str> = v["items"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (code, names.join(","))
}

/// Rule (query decoding + label selector grammar): `+` and `%20` are spaces, percent
/// escapes decode before parsing; equality, inequality, set-based and existence
/// requirements combine with AND.
#[tokio::test]
async fn encoded_label_selectors() {
    bounded(async {
        let (_api, client) = setup().await;
        for (query, want) in [
            ("labelSelector=app+in+%28x%2Cy%29", "a,b"),
            ("labelSelector=app%20in%20(x,y)", "a,b"),
            ("labelSelector=app+in+(+x+,+y+)", "a,b"),
            ("labelSelector=app+notin+%28x%29", "b,c"),
            ("labelSelector=%21app", "c"),
            ("labelSelector=app%21%3Dx", "b,c"),
            ("labelSelector=app%3D%3Dy", "b"),
            ("labelSelector=tier%2Capp+in+%28x%29", "a"),
            ("labelSelector=app+in+%28x%29%2C%21tier", ""),
            ("labelSelector=", "a,b,c"),
            ("fieldSelector=metadata.name%3Da", "a"),
            ("fieldSelector=metadata.name%21%3Da&labelSelector=app", "b"),
        ] {
            assert_eq!(
                raw_list(&client, query).await,
                (200, want.into()),
                "{query}"
            );
        }
        for bad in [
            "labelSelector=app+in+x",
            "labelSelector=app+in+%28x",
            "fieldSelector=spec.unknown%3D1",
            "labelSelector=%E9%ZZ+x",
        ] {
            assert_eq!(raw_list(&client, bad).await.0, 400, "{bad}");
        }
    })
    .await;
}

/// The same selectors through kube's `ListParams` (which form-encodes them).
#[tokio::test]
async fn kube_encoded_set_based_selectors() {
    bounded(async {
        let (_api, client) = setup().await;
        let pods: Api<Pod> = Api::default_namespaced(client);
        for (sel, want) in [
            ("app in (x, y),!other", "a,b"),
            ("app notin (y), app", "a"),
            ("tier!=web", "b,c"),
        ] {
            let mut names: Vec<String> = pods
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| p.name_any())
                .collect();
            names.sort();
            assert_eq!(names.join(","), want, "{sel}");
        }
    })
    .await;
}
