//! Fixtures the conformance modules share: a tiny custom resource, time bounds,
//! polling, error and object builders, watch-event helpers and raw HTTP reads.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use keyrotor_testkit::FakeApi;
use kube::api::{Api, PostParams, WatchEvent};
use kube::{CustomResource, CustomResourceExt, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// A tiny custom resource with a status subresource.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
#[kube(
    group = "test.keyrotor.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, Default, PartialEq)]
pub struct WidgetStatus {
    pub observed: i32,
}

/// The default bound on a single test step.
pub const STEP: Duration = Duration::from_secs(10);

/// Bounds a whole test in time, so a hang fails the test instead of stalling the suite.
pub async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("test exceeded 60 s");
}

/// Bounds one test step by [`STEP`].
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    within_for(STEP, f).await
}

/// Bounds one test step by `t`.
pub async fn within_for<F: std::future::Future>(t: Duration, f: F) -> F::Output {
    tokio::time::timeout(t, f)
        .await
        .expect("test step timed out")
}

/// Polls `f` every 20 ms until it returns true; fails the test after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fake API server with the `Widget` CRD registered.
pub fn api_with_widgets() -> FakeApi {
    let api = FakeApi::new();
    api.register_crd(&Widget::crd());
    api
}

/// The (code, reason) of an API error; panics on any other error.
pub fn err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The code of an API error; panics on any other error.
pub fn code(e: kube::Error) -> u16 {
    err(e).0
}

/// A Secret named `name` with `stringData` `data`.
pub fn secret(name: &str, data: Value) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap()
}

/// An empty ConfigMap named `name`.
pub fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// The resourceVersion of `k` as a number.
pub fn rv<K: Resource>(k: &K) -> u64 {
    k.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// Creates pods `a` (app=x, tier=web), `b` (app=y) and `c` (other=1).
pub async fn create_labelled_pods(pods: &Api<Pod>) {
    for (name, labels) in [
        ("a", json!({"app": "x", "tier": "web"})),
        ("b", json!({"app": "y"})),
        ("c", json!({"other": "1"})),
    ] {
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
}

/// Waits for the next non-bookmark watch event.
pub async fn next_event<K: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    within(async {
        loop {
            match s.next().await.expect("watch ended").expect("watch error") {
                WatchEvent::Bookmark(_) => continue,
                e => return e,
            }
        }
    })
    .await
}

/// Asserts no non-bookmark event arrives within `d`.
pub async fn no_event<K: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
    d: Duration,
) {
    let got = tokio::time::timeout(d, async {
        loop {
            match s.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(got.is_err(), "expected no watch event, got {got:?}");
}

/// Sends a raw GET for `uri` (with an optional Accept header); returns the status code and
/// the JSON body.
pub async fn raw_get(client: &kube::Client, uri: &str, accept: Option<&str>) -> (u16, Value) {
    let mut req = http::Request::get(uri);
    if let Some(accept) = accept {
        req = req.header(http::header::ACCEPT, accept);
    }
    let req = req.body(vec![]).unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&body).unwrap())
}
