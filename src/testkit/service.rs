//! The tower `Service` that answers Kubernetes REST requests from the store.
//!
//! It is generic over the request body, so the same handler serves `kube::Client` in
//! process and hyper connections from the loopback listener (`http.rs`).

use super::body::ResponseBody;
use super::discovery;
use super::error::ApiError;
use super::faults::{Fault, Faults, WriteRecord};
use super::patch::PatchKind;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector, Selectors};
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

/// Decodes `application/x-www-form-urlencoded` query text (`+` is a space).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A resource URL, resolved.
struct Route {
    ty: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: String,
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn parse_route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let (ns, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if store
                .find_type(group, version, plural)
                .is_some_and(|t| t.namespaced) =>
        {
            (
                Some(*ns),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            )
        }
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(not_found_path()),
    };
    if rest.len() > 5 || (ns.is_none() && rest.len() > 3) {
        return Err(not_found_path());
    }
    let ty = store
        .find_type(group, version, plural)
        .ok_or_else(not_found_path)?;
    let subresource = match sub {
        None => String::new(),
        Some("status") if ty.status => "status".to_string(),
        Some(_) => return Err(not_found_path()),
    };
    Ok(Route {
        ty,
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        subresource,
    })
}

fn selectors(q: &HashMap<String, String>, plural: &str) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(
            q.get("fieldSelector").map(String::as_str).unwrap_or(""),
            plural,
        )?,
    })
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
        return error_response(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the API is halted by the test (simulated crash point)",
        ));
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
        (&Method::GET, true) => read_one(&inner, &route),
        (&Method::GET, false) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return start_watch(&inner, &route, &q);
        }
        (&Method::GET, false) => list(&inner, &route, &q),
        (&Method::POST, false)
        | (&Method::PUT, true)
        | (&Method::PATCH, true)
        | (&Method::DELETE, _) => {
            return write(
                &inner,
                &route,
                &q,
                &parts.method,
                &content_type,
                &body,
                manager,
                user_agent,
            )
            .await;
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    };
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

fn stale_at(inner: &Inner) -> Option<u64> {
    let lag = inner.faults.stale_lag();
    (lag > 0).then(|| inner.store.current_rv().saturating_sub(lag))
}

fn read_one(inner: &Inner, route: &Route) -> Result<Value, ApiError> {
    let name = route.name.as_deref().unwrap_or("");
    inner
        .store
        .get(&route.ty, route.namespace.as_deref(), name, stale_at(inner))
}

fn list(inner: &Inner, route: &Route, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let sel = selectors(q, &route.ty.plural)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut at = stale_at(inner);
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
    } else if let (Some(stale), Some(min)) = (
        at,
        q.get("resourceVersion")
            .and_then(|r| r.parse::<u64>().ok())
            .filter(|_| {
                q.get("resourceVersionMatch")
                    .is_some_and(|m| m == "NotOlderThan")
            }),
    ) {
        // A lagging cache asked for a version it has not reached: the real
        // apiserver waits for it to catch up; here it has caught up at once.
        at = Some(stale.max(min));
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
    };
    let rx = watch::start(inner.store.clone(), inner.faults.clone(), req);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResponseBody::Stream(rx))
        .expect("static response parts are valid")
}

/// Runs a write with fault injection and logging. Returns (code, body, changed).
#[allow(clippy::too_many_arguments)]
async fn write(
    inner: &Arc<Inner>,
    route: &Route,
    q: &HashMap<String, String>,
    method: &Method,
    content_type: &str,
    body: &[u8],
    manager: String,
    user_agent: String,
) -> Response<ResponseBody> {
    let patch_kind = PatchKind::from_content_type(content_type);
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => patch_kind.map(PatchKind::verb_name).unwrap_or("patch"),
        _ if route.name.is_some() => "delete",
        _ => "deletecollection",
    };
    let (seq, fault) = inner.faults.on_write();
    let mut record = WriteRecord {
        seq,
        verb: verb.to_string(),
        group: route.ty.group.clone(),
        resource: route.ty.plural.clone(),
        subresource: route.subresource.clone(),
        namespace: route.namespace.clone(),
        name: route.name.clone().unwrap_or_default(),
        field_manager: manager.clone(),
        user_agent,
        code: 0,
        changed: false,
    };
    let opts = WriteOpts {
        manager,
        subresource: route.subresource.clone(),
        force: q.get("force").is_some_and(|f| f == "true"),
    };
    let run = || -> (Response<ResponseBody>, u16, bool) {
        match perform(inner, route, q, method, patch_kind, body, &opts) {
            Ok((code, v, changed)) => (json_response(code, &v), code, changed),
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
