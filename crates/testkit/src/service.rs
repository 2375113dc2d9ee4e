//! The tower `Service` that answers Kubernetes REST requests from the store.
//!
//! It is generic over the request body, so the same handler serves `kube::Client` in
//! process and hyper connections from the loopback listener (`http.rs`).

use super::body::ResponseBody;
use super::discovery;
use super::error::ApiError;
use super::faults::{Fault, Faults, WriteAdmission, WriteRecord};
use super::meta_view::{self, View};
use super::patch::PatchKind;
use super::route::{Route, not_found_path, parse_query, parse_route, selectors};
use super::store::{Deleted, Store, WatchFrom, WriteOpts};
use super::watch::{self, WatchRequest};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Shared state behind every clone of the service.
pub struct Inner {
    /// Objects and history.
    pub store: Arc<Store>,
    /// Fault-injection controls.
    pub faults: Arc<Faults>,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
}

/// The in-process Kubernetes API as a tower service (cheap to clone).
#[derive(Clone)]
pub struct FakeService {
    pub(crate) inner: Arc<Inner>,
}

impl<B> tower::Service<Request<B>> for FakeService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    return Ok(error_response(&ApiError::bad_request(
                        "unreadable request body",
                    )));
                }
            };
            Ok(handle(inner, parts, bytes).await)
        })
    }
}

fn json_response(code: u16, v: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResponseBody::full(
            serde_json::to_vec(v).unwrap_or_default(),
        ))
        .expect("static response parts are valid")
}

fn error_response(e: &ApiError) -> Response<ResponseBody> {
    json_response(e.code, &e.to_status())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn success_status(route: &Route, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {
            "name": obj.pointer("/metadata/name"),
            "group": route.ty.group,
            "kind": route.ty.plural,
            "uid": obj.pointer("/metadata/uid"),
        }
    })
}

/// Answers one request.
pub async fn handle(
    inner: Arc<Inner>,
    parts: http::request::Parts,
    body: Bytes,
) -> Response<ResponseBody> {
    let delay = inner.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if inner.faults.is_halted() {
        return error_response(&ApiError::halted());
    }
    let path = parts.uri.path().to_string();
    let q = parse_query(parts.uri.query());
    if parts.method == Method::GET
        && let Some(doc) = discovery::answer(&path, &inner.store.types())
    {
        return json_response(200, &doc);
    }
    let route = match parse_route(&inner.store, &path) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let manager = q
        .get("fieldManager")
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| match user_agent.split('/').next() {
            Some(product) if !product.is_empty() => product.to_string(),
            _ => "unknown".to_string(),
        });
    let view = match meta_view::from_accept(
        parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    ) {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        // Only JSON (and YAML for apply) is spoken; 415 makes client-go retry in JSON.
        return error_response(&ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    let result = match (&parts.method, route.name.is_some()) {
        (&Method::GET, true) => read_one(&inner, &route, &q),
        (&Method::GET, false) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return start_watch(&inner, &route, &q, view);
        }
        (&Method::GET, false) => list(&inner, &route, &q),
        (&Method::POST, false)
        | (&Method::PUT, true)
        | (&Method::PATCH, true)
        | (&Method::DELETE, _) => {
            let req = WriteRequest {
                method: &parts.method,
                content_type: &content_type,
                body: &body,
                manager,
                user_agent,
                view,
            };
            return write(&inner, &route, &q, req).await;
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    };
    match result {
        Ok(v) => json_response(200, &meta_view::render(view, v)),
        Err(e) => error_response(&e),
    }
}

/// The resourceVersion a stale view serves (never older than the retained history, so a
/// stale read degrades to the oldest state still known instead of failing with 410).
///
/// Only reads a real apiserver may answer from its watch cache lag: a get or list with
/// `resourceVersion=0` ("any"), or with a `resourceVersion` (`NotOlderThan`, the default
/// match) older than the cache. A get or list *without* a resourceVersion is a consistent
/// read from etcd and always sees the latest state (see [`read_at`]); watches lag too.
fn stale_at(inner: &Inner) -> Option<u64> {
    let lag = inner.faults.stale_lag();
    (lag > 0).then(|| {
        inner
            .store
            .current_rv()
            .saturating_sub(lag)
            .max(inner.store.compacted_rv())
    })
}

/// The resourceVersion a get or list (without a continue token or `Exact`) is served at:
/// the latest state for a consistent read (no resourceVersion), the stale view for
/// `resourceVersion=0`, and the stale view but no older than `N` for `resourceVersion=N`
/// (a lagging cache asked for a version it has not reached: the real apiserver waits for
/// it to catch up; here it has caught up at once).
fn read_at(inner: &Inner, q: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => Ok(None),
        Some("0") => Ok(stale_at(inner)),
        Some(rv) => {
            let min = rv
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            Ok(stale_at(inner).map(|stale| stale.max(min)))
        }
    }
}

fn read_one(inner: &Inner, route: &Route, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let name = route.name.as_deref().unwrap_or("");
    let at = read_at(inner, q)?;
    inner
        .store
        .get(&route.ty, route.namespace.as_deref(), name, at)
}

fn list(inner: &Inner, route: &Route, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let sel = selectors(q, &route.ty.plural)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let at;
    let mut after = None;
    if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        let mut parts = token.splitn(3, '|');
        let rv = parts.next().and_then(|r| r.parse::<u64>().ok());
        let (Some(rv), Some(ns), Some(name)) = (rv, parts.next(), parts.next()) else {
            return Err(ApiError::bad_request("invalid continue token"));
        };
        at = Some(rv);
        after = Some((ns.to_string(), name.to_string()));
    } else if q.get("resourceVersionMatch").is_some_and(|m| m == "Exact") {
        at = q.get("resourceVersion").and_then(|r| r.parse().ok());
    } else {
        at = read_at(inner, q)?;
    }
    let (rv, items, next) = inner.store.list(
        &route.ty,
        route.namespace.as_deref(),
        &sel,
        at,
        after.as_ref(),
        limit,
    )?;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some((ns, name)) = next {
        meta["continue"] = Value::String(format!("{rv}|{ns}|{name}"));
    }
    Ok(json!({
        "apiVersion": route.ty.api_version(),
        "kind": format!("{}List", route.ty.kind),
        "metadata": meta,
        "items": items,
    }))
}

fn start_watch(
    inner: &Arc<Inner>,
    route: &Route,
    q: &HashMap<String, String>,
    view: View,
) -> Response<ResponseBody> {
    let sel = match selectors(q, &route.ty.plural) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let send_initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => WatchFrom::Now,
        _ if send_initial_events => WatchFrom::Now,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => WatchFrom::After(rv),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resourceVersion {rv:?}"
                )));
            }
        },
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let req = WatchRequest {
        ty: route.ty.clone(),
        namespace: route.namespace.clone(),
        selectors: sel,
        from,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        send_initial_events,
        timeout: Duration::from_secs(timeout),
        bookmark_interval: inner.bookmark_interval,
        metadata_only: view != View::Full,
    };
    let rx = watch::start(inner.store.clone(), inner.faults.clone(), req);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResponseBody::Stream(rx))
        .expect("static response parts are valid")
}

/// The parts of a write request `write` needs besides the route.
struct WriteRequest<'a> {
    method: &'a Method,
    content_type: &'a str,
    body: &'a [u8],
    /// `fieldManager`, else the User-Agent's product, else `unknown`.
    manager: String,
    user_agent: String,
    view: View,
}

/// Runs a write with fault injection and logging.
async fn write(
    inner: &Arc<Inner>,
    route: &Route,
    q: &HashMap<String, String>,
    req: WriteRequest<'_>,
) -> Response<ResponseBody> {
    let patch_kind = PatchKind::from_content_type(req.content_type);
    let verb = match *req.method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => patch_kind.map(PatchKind::verb_name).unwrap_or("patch"),
        _ if route.name.is_some() => "delete",
        _ => "deletecollection",
    };
    let (seq, fault) = match inner.faults.on_write(&req.manager) {
        WriteAdmission::Halted => return error_response(&ApiError::halted()),
        WriteAdmission::Admitted { seq, fault } => (seq, fault),
    };
    let mut record = WriteRecord {
        seq,
        verb: verb.to_string(),
        group: route.ty.group.clone(),
        resource: route.ty.plural.clone(),
        subresource: route.subresource.clone(),
        namespace: route.namespace.clone(),
        name: route.name.clone().unwrap_or_default(),
        field_manager: req.manager.clone(),
        user_agent: req.user_agent,
        code: 0,
        changed: false,
    };
    let opts = WriteOpts {
        manager: req.manager,
        subresource: route.subresource.clone(),
        force: q.get("force").is_some_and(|f| f == "true"),
    };
    let view = req.view;
    let run = || -> (Response<ResponseBody>, u16, bool) {
        match perform(inner, route, q, req.method, patch_kind, req.body, &opts) {
            Ok((code, v, changed)) => (
                json_response(code, &meta_view::render(view, v)),
                code,
                changed,
            ),
            Err(e) => (error_response(&e), e.code, false),
        }
    };
    let response = match fault {
        None => {
            let (resp, code, changed) = run();
            record.code = code;
            record.changed = changed;
            resp
        }
        Some(Fault::Status(code)) => {
            record.code = code;
            error_response(&ApiError::for_code(code))
        }
        Some(Fault::Hang) => {
            inner.faults.after_write(record);
            return std::future::pending().await;
        }
        Some(Fault::Timeout(d)) => {
            tokio::time::sleep(d).await;
            record.code = 504;
            error_response(&ApiError::for_code(504))
        }
        Some(Fault::AppliedThenTimeout(d)) => {
            let (_resp, _code, changed) = run();
            record.changed = changed;
            tokio::time::sleep(d).await;
            record.code = 504;
            error_response(&ApiError::for_code(504))
        }
    };
    inner.faults.after_write(record);
    response
}

fn perform(
    inner: &Inner,
    route: &Route,
    q: &HashMap<String, String>,
    method: &Method,
    patch_kind: Option<PatchKind>,
    body: &[u8],
    opts: &WriteOpts,
) -> Result<(u16, Value, bool), ApiError> {
    let store = &inner.store;
    let ns = route.namespace.as_deref();
    if route.ty.namespaced && ns.is_none() && route.name.is_some() {
        return Err(not_found_path());
    }
    if q.contains_key("dryRun") {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the testkit",
        ));
    }
    let name = route.name.as_deref().unwrap_or("");
    match *method {
        Method::POST => {
            if !route.subresource.is_empty() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "create on a subresource",
                ));
            }
            let obj = store.create(&route.ty, ns, parse_json(body)?, opts)?;
            Ok((201, obj, true))
        }
        Method::PUT => {
            let (obj, changed) = store.update(&route.ty, ns, name, parse_json(body)?, opts)?;
            Ok((200, obj, changed))
        }
        Method::PATCH => {
            let kind = patch_kind.ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format",
                )
            })?;
            let (obj, changed, created) = store.patch(&route.ty, ns, name, kind, body, opts)?;
            Ok((if created { 201 } else { 200 }, obj, changed))
        }
        _ => {
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                parse_json(body)?
            };
            if route.name.is_none() {
                let sel = selectors(q, &route.ty.plural)?;
                let items = store.delete_collection(&route.ty, ns, &sel);
                let changed = !items.is_empty();
                let list = json!({
                    "apiVersion": route.ty.api_version(),
                    "kind": format!("{}List", route.ty.kind),
                    "metadata": {"resourceVersion": store.current_rv().to_string()},
                    "items": items,
                });
                return Ok((200, list, changed));
            }
            let pre_uid = options
                .pointer("/preconditions/uid")
                .and_then(Value::as_str);
            let pre_rv = options
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let policy = options
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .or(q.get("propagationPolicy").map(String::as_str));
            let orphan = policy == Some("Orphan")
                || options.get("orphanDependents") == Some(&Value::Bool(true));
            match store.delete(&route.ty, ns, name, pre_uid, pre_rv, orphan)? {
                Deleted::Pending(obj) => Ok((200, obj, true)),
                Deleted::AlreadyPending(obj) => Ok((200, obj, false)),
                Deleted::Removed(obj) => Ok((200, success_status(route, &obj), true)),
            }
        }
    }
}
