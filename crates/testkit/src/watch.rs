//! Watch streams: replay from a resourceVersion, live events, bookmarks, 410 Gone.
//!
//! Each watch is a task writing newline-delimited JSON `{"type": ..., "object": ...}` lines
//! into the response body. It ends on `timeoutSeconds`, when the client goes away, when a
//! test cuts watches, or when it falls too far behind (410, like a watch cache that
//! evicted the watcher). Under stale reads, events are held back until they are `lag`
//! writes old.

use super::error::ApiError;
use super::faults::Faults;
use super::meta_view;
use super::resources::ResourceType;
use super::selector::Selectors;
use super::store::{EventType, HistEvent, Store, WatchFrom};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Parameters of one watch request.
pub struct WatchRequest {
    /// The watched type.
    pub ty: ResourceType,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Label and field selectors.
    pub selectors: Selectors,
    /// Start point.
    pub from: WatchFrom,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents` (streaming list): end the initial batch with a marked bookmark.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// Interval between bookmarks.
    pub bookmark_interval: Duration,
    /// `Accept: ...;as=PartialObjectMetadata`: objects (and bookmarks) carry only metadata.
    pub metadata_only: bool,
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// An ADDED/MODIFIED/DELETED/BOOKMARK line, shaped for the request's view.
fn object_line(req: &WatchRequest, ty: &str, object: &Value) -> Bytes {
    if req.metadata_only {
        line(ty, &meta_view::object(object))
    } else {
        line(ty, object)
    }
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let ty = &req.ty;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    object_line(
        req,
        "BOOKMARK",
        &json!({"apiVersion": ty.api_version(), "kind": ty.kind, "metadata": meta}),
    )
}

/// The 410 Gone ERROR event the apiserver sends for a compacted resourceVersion.
pub fn gone_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status())
}

/// What a selective watch sees for one change: events move objects in and out of view.
fn translate(req: &WatchRequest, e: &HistEvent) -> Option<(EventType, Value)> {
    if req.namespace.as_deref().is_some_and(|n| n != e.namespace) {
        return None;
    }
    let now = e.ty != EventType::Deleted && req.selectors.matches(&e.obj);
    let before = e.prev.as_ref().is_some_and(|p| req.selectors.matches(p));
    let with_type = |mut o: Value| {
        o["apiVersion"] = Value::String(req.ty.api_version());
        o["kind"] = Value::String(req.ty.kind.clone());
        o
    };
    match (e.ty, before, now) {
        (EventType::Deleted, _, _) if req.selectors.matches(&e.obj) => {
            Some((EventType::Deleted, with_type(e.obj.clone())))
        }
        (EventType::Deleted, _, _) => None,
        (_, false, true) => Some((EventType::Added, with_type(e.obj.clone()))),
        (_, true, true) => Some((EventType::Modified, with_type(e.obj.clone()))),
        (_, true, false) => {
            // Left the selector: the watcher must forget it (object shown at the new rv).
            Some((EventType::Deleted, with_type(e.obj.clone())))
        }
        (_, false, false) => None,
    }
}

/// Starts a watch; returns the receiving end of its body.
pub fn start(store: Arc<Store>, faults: Arc<Faults>, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    // Subscribed before the response is returned, so a cut right after it still ends this watch.
    let cut = faults.cut_receiver();
    tokio::spawn(async move {
        let _ = run(store, faults, req, tx, cut).await;
    });
    rx
}

async fn run(
    store: Arc<Store>,
    faults: Arc<Faults>,
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) -> Result<(), ()> {
    let send = |b: Bytes| {
        let tx = tx.clone();
        async move { tx.send(b).await.map_err(|_| ()) }
    };
    let lag = faults.stale_lag();
    let sub = match store.subscribe(&req.ty, req.from, lag) {
        Ok(s) => s,
        Err(e) => return send(gone_line(&e)).await,
    };
    let mut rx = sub.rx;
    for obj in sub.initial.iter().filter(|o| {
        req.selectors.matches(o)
            && req
                .namespace
                .as_deref()
                .is_none_or(|n| o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n))
    }) {
        send(object_line(&req, "ADDED", obj)).await?;
    }
    if req.send_initial_events {
        send(bookmark(&req, sub.initial_rv, true)).await?;
    }
    let mut pending: VecDeque<Arc<HistEvent>> = sub.replay.into();
    let mut last_sent = sub.initial_rv;
    let deadline = tokio::time::Instant::now() + req.timeout;
    let mut ticker = tokio::time::interval(req.bookmark_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lag_tick = tokio::time::interval(Duration::from_millis(20));
    let key = req.ty.store_key();
    loop {
        let mut want_bookmark = false;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = cut.changed() => return Ok(()),
            _ = tx.closed() => return Ok(()),
            _ = ticker.tick() => want_bookmark = req.bookmarks,
            _ = lag_tick.tick(), if !pending.is_empty() => {},
            ev = rx.recv() => match ev {
                Ok(e) => pending.push_back(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return send(gone_line(&ApiError::gone("watch fell behind; too old resource version"))).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
        let Some(latest) = store.rv_draining(&mut rx, &mut pending) else {
            return send(gone_line(&ApiError::gone(
                "watch fell behind; too old resource version",
            )))
            .await;
        };
        let visible = latest.saturating_sub(faults.stale_lag());
        while pending.front().is_some_and(|e| e.rv <= visible) {
            let e = pending.pop_front().expect("checked non-empty");
            if e.rv <= last_sent || e.store_key != key {
                continue;
            }
            last_sent = e.rv;
            if let Some((ty, obj)) = translate(&req, &e) {
                send(object_line(&req, ty.as_str(), &obj)).await?;
            }
        }
        if want_bookmark {
            last_sent = last_sent.max(visible);
            send(bookmark(&req, last_sent, false)).await?;
        }
    }
}
