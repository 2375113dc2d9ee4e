//! The object store: every object, one global resourceVersion, and a bounded event history.
//!
//! All state sits behind one mutex and every operation is synchronous under it, so writes
//! are totally ordered exactly like etcd revisions: each change gets the next
//! resourceVersion and exactly one watch event. The history keeps, per event, the object
//! before and after, which serves three purposes: watch replay from a resourceVersion,
//! consistent paging, and stale views "N writes behind" for fault injection.

use super::apply::{self, Managers};
use super::error::ApiError;
use super::patch::{self, PatchKind};
use super::resources::{ResourceType, builtins};
use super::selector::Selectors;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history and broadcast to watches.
#[derive(Debug, Clone)]
pub struct HistEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// `group/plural` of the object.
    pub store_key: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Event type.
    pub ty: EventType,
    /// Object after the change (for deletions: its last state, with the deletion's rv).
    pub obj: Value,
    /// Object before the change (None for creations).
    pub prev: Option<Value>,
}

/// One stored object and its field ownership.
#[derive(Debug, Clone)]
struct Entry {
    obj: Value,
    managers: Managers,
}

type ObjKey = (String, String);

/// The outcome of a delete request.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Finalizers remain: the object now carries a deletionTimestamp.
    Pending(Value),
    /// It already carried a deletionTimestamp: nothing changed.
    AlreadyPending(Value),
    /// The object is gone (this is its last state).
    Removed(Value),
}

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// Field manager name.
    pub manager: String,
    /// `""` or `"status"`.
    pub subresource: String,
    /// Server-side apply `force`.
    pub force: bool,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// `resourceVersion` absent or "0": synthetic ADDED events for the current state first.
    Now,
    /// Replay every change after this resourceVersion.
    After(u64),
}

/// What a new watch gets: initial objects, history to replay, and the live feed.
pub struct Subscription {
    /// Objects to send as synthetic ADDED events (for `WatchFrom::Now`).
    pub initial: Vec<Value>,
    /// resourceVersion the initial objects reflect.
    pub initial_rv: u64,
    /// Changes after the start point, still to be filtered and sent.
    pub replay: Vec<Arc<HistEvent>>,
    /// Live changes.
    pub rx: broadcast::Receiver<Arc<HistEvent>>,
}

struct State {
    rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<String, BTreeMap<ObjKey, Entry>>,
    history: VecDeque<Arc<HistEvent>>,
    history_cap: usize,
    /// Watches and exact reads are only possible from this resourceVersion on.
    compacted: u64,
    counter: u64,
    tx: broadcast::Sender<Arc<HistEvent>>,
}

/// The shared store.
pub struct Store {
    state: Mutex<State>,
}

/// First resourceVersion handed out; nonzero so "0" always means "any version".
const FIRST_RV: u64 = 1000;

/// Current time in the apiserver's RFC 3339, second-precision format.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(v: &Value, field: &str) -> Option<String> {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"].as_object_mut().expect("made an object above")
}

/// Standard base64, for Secret `stringData` (avoids another dependency for 15 lines).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The part of an object that counts as "spec" for `metadata.generation`: everything but
/// metadata (and status, when the type has a status subresource).
fn spec_part(ty: &ResourceType, v: &Value) -> Value {
    let mut m = v.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "apiVersion", "kind"] {
        m.remove(k);
    }
    if ty.status {
        m.remove("status");
    }
    Value::Object(m)
}

/// `markAsDeleting`: the first deletion of a generation-tracked object bumps its generation.
fn bump_generation(obj: &mut Value) {
    if let Some(g) = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// Object equality for the no-op rule: everything but resourceVersion.
fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

impl Store {
    /// An empty store with the built-in types and the namespaces a cluster starts with.
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(16 * 1024);
        let store = Self {
            state: Mutex::new(State {
                rv: FIRST_RV,
                types: builtins(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_cap,
                compacted: FIRST_RV,
                counter: 0,
                tx,
            }),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.ensure_namespace(ns);
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers (or replaces) a resource type.
    pub fn register(&self, ty: ResourceType) {
        self.lock().register(ty);
    }

    /// All served types.
    pub fn types(&self) -> Vec<ResourceType> {
        self.lock().types.clone()
    }

    /// Finds the type served at group/version/plural.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Creates a namespace if missing.
    pub fn ensure_namespace(&self, name: &str) {
        let ty = ResourceType::new("", "v1", "namespaces", "Namespace")
            .cluster_scoped()
            .with_status();
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let opts = WriteOpts {
            manager: "testkit".into(),
            ..Default::default()
        };
        let _ = self.create(&ty, None, body, &opts);
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Latest resourceVersion, while draining `rx` into `pending`: every event up to the
    /// returned version is then in `pending` (sends happen under the same lock), which keeps
    /// bookmarks from overtaking events.
    pub fn rv_draining(
        &self,
        rx: &mut broadcast::Receiver<Arc<HistEvent>>,
        pending: &mut VecDeque<Arc<HistEvent>>,
    ) -> Option<u64> {
        let st = self.lock();
        loop {
            match rx.try_recv() {
                Ok(e) => pending.push_back(e),
                Err(broadcast::error::TryRecvError::Empty) => return Some(st.rv),
                Err(broadcast::error::TryRecvError::Closed) => return Some(st.rv),
                // The watcher fell too far behind the live feed: None, it must restart.
                Err(broadcast::error::TryRecvError::Lagged(_)) => return None,
            }
        }
    }

    /// Drops the whole event history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted = st.rv;
    }

    /// Oldest resourceVersion a watch can still start from.
    pub fn compacted_rv(&self) -> u64 {
        self.lock().compacted
    }

    /// Reads one object, optionally as of an older resourceVersion.
    pub fn get(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        at: Option<u64>,
    ) -> Result<Value, ApiError> {
        let st = self.lock();
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        let found = match at {
            Some(at) if at < st.rv => st.view(&ty.store_key(), at.max(st.compacted)).remove(&key),
            _ => st
                .objects
                .get(&ty.store_key())
                .and_then(|m| m.get(&key))
                .map(|e| e.obj.clone()),
        };
        found
            .map(|o| with_type(o, ty))
            .ok_or_else(|| ApiError::not_found(&ty.group, &ty.plural, name))
    }

    /// Lists objects as of `at` (None: latest), after `after` (paging), up to `limit`.
    /// Returns (resourceVersion of the view, items, whether more remain).
    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        sel: &Selectors,
        at: Option<u64>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
    ) -> Result<(u64, Vec<Value>, Option<ObjKey>), ApiError> {
        let st = self.lock();
        let at = at.unwrap_or(st.rv).min(st.rv);
        if at < st.compacted {
            return Err(ApiError::gone(format!(
                "The provided continue parameter or resourceVersion is too old ({at} < {})",
                st.compacted
            )));
        }
        let view = st.view(&ty.store_key(), at);
        let mut items = vec![];
        let mut next = None;
        for (key, obj) in view {
            if after.is_some_and(|a| &key <= a)
                || ns.is_some_and(|n| n != key.0)
                || !sel.matches(&obj)
            {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = Some(key);
                break;
            }
            items.push(with_type(obj, ty));
        }
        // The continue token must name the last returned item, not the first left out.
        let next = next.and_then(|_| {
            items.last().map(|o: &Value| {
                (
                    meta(o, "namespace").unwrap_or_default(),
                    meta(o, "name").unwrap_or_default(),
                )
            })
        });
        Ok((at, items, next))
    }

    /// Opens a watch on a type; `lag` holds the start point that many writes back.
    pub fn subscribe(
        &self,
        ty: &ResourceType,
        from: WatchFrom,
        lag: u64,
    ) -> Result<Subscription, ApiError> {
        let st = self.lock();
        let key = ty.store_key();
        let rx = st.tx.subscribe();
        match from {
            WatchFrom::Now => {
                let at = st.rv.saturating_sub(lag).max(st.compacted);
                let initial = st
                    .view(&key, at)
                    .into_values()
                    .map(|o| with_type(o, ty))
                    .collect();
                let replay = st
                    .history
                    .iter()
                    .filter(|e| e.rv > at && e.store_key == key)
                    .cloned()
                    .collect();
                Ok(Subscription {
                    initial,
                    initial_rv: at,
                    replay,
                    rx,
                })
            }
            WatchFrom::After(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        st.compacted
                    )));
                }
                let replay = st
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.store_key == key)
                    .cloned()
                    .collect();
                Ok(Subscription {
                    initial: vec![],
                    initial_rv: rv,
                    replay,
                    rx,
                })
            }
        }
    }

    /// POST: creates an object (honouring `generateName`).
    pub fn create(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        self.lock().create(ty, ns, body, opts)
    }

    /// PUT: replaces an object (or its status).
    pub fn update(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<(Value, bool), ApiError> {
        let mut st = self.lock();
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        let current = st.entry(ty, &key)?;
        if meta(&body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        check_rv(&body, &current.obj, ty, name)?;
        let mut managers = current.managers.clone();
        let new = scoped_write(ty, &current.obj, body, &opts.subresource);
        apply::record_update(
            Some(&current.obj),
            &new,
            &mut managers,
            &opts.manager,
            &opts.subresource,
            &now_rfc3339(),
        );
        st.finish_write(ty, key, Some(current), new, managers)
    }

    /// PATCH: merge, JSON, strategic or server-side apply. Returns (object, changed, created).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<(Value, bool, bool), ApiError> {
        let mut st = self.lock();
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        let now = now_rfc3339();
        if kind == PatchKind::Apply {
            let mut applied: Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request("apply body must be an object"));
            }
            if applied.get("kind").and_then(Value::as_str) != Some(ty.kind.as_str())
                || applied.get("apiVersion").and_then(Value::as_str)
                    != Some(ty.api_version().as_str())
            {
                return Err(ApiError::bad_request(format!(
                    "apply configuration must have apiVersion {} and kind {}",
                    ty.api_version(),
                    ty.kind
                )));
            }
            if meta(&applied, "name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            if opts.manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requires fieldManager",
                ));
            }
            // Apply touches only the part the endpoint owns (see `scoped_write`).
            if ty.status {
                let obj = applied.as_object_mut().expect("checked above");
                if opts.subresource == "status" {
                    obj.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "status"));
                } else {
                    obj.remove("status");
                }
            }
            let existing = st.entry(ty, &key).ok();
            if existing.is_none() && opts.subresource == "status" {
                // Apply may create an object, but not through its status subresource.
                return Err(ApiError::not_found(&ty.group, &ty.plural, name));
            }
            if let Some(current) = &existing {
                // A resourceVersion in the applied configuration is a precondition.
                check_rv(&applied, &current.obj, ty, name)?;
            }
            let mut managers = existing
                .as_ref()
                .map(|e| e.managers.clone())
                .unwrap_or_default();
            if existing.is_none() {
                let m = meta_mut(&mut applied);
                m.insert("name".into(), Value::String(name.to_string()));
                if let Some(ns) = ns {
                    m.insert("namespace".into(), Value::String(ns.to_string()));
                }
                let created = apply::server_side_apply(
                    None,
                    &mut managers,
                    &applied,
                    &opts.manager,
                    &opts.subresource,
                    opts.force,
                    &now,
                )?;
                let obj = st.create_with(ty, ns, created, managers)?;
                return Ok((obj, true, true));
            }
            let current = existing.expect("checked above");
            let new = apply::server_side_apply(
                Some(&current.obj),
                &mut managers,
                &applied,
                &opts.manager,
                &opts.subresource,
                opts.force,
                &now,
            )?;
            let new = scoped_write(ty, &current.obj, new, &opts.subresource);
            let (obj, changed) = st.finish_write(ty, key, Some(current), new, managers)?;
            return Ok((obj, changed, false));
        }
        let current = st.entry(ty, &key)?;
        let mut patched = current.obj.clone();
        patch::apply_patch(kind, &mut patched, body)?;
        check_rv(&patched, &current.obj, ty, name)?;
        let mut managers = current.managers.clone();
        let new = scoped_write(ty, &current.obj, patched, &opts.subresource);
        apply::record_update(
            Some(&current.obj),
            &new,
            &mut managers,
            &opts.manager,
            &opts.subresource,
            &now,
        );
        let (obj, changed) = st.finish_write(ty, key, Some(current), new, managers)?;
        Ok((obj, changed, false))
    }

    /// DELETE one object, with optional uid / resourceVersion preconditions.
    pub fn delete(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        name: &str,
        pre_uid: Option<&str>,
        pre_rv: Option<&str>,
        orphan: bool,
    ) -> Result<Deleted, ApiError> {
        let mut st = self.lock();
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        let current = st.entry(ty, &key)?;
        if pre_uid.is_some_and(|u| Some(u) != meta(&current.obj, "uid").as_deref())
            || pre_rv.is_some_and(|r| Some(r) != meta(&current.obj, "resourceVersion").as_deref())
        {
            return Err(ApiError::conflict(&ty.group, &ty.plural, name));
        }
        if orphan {
            st.orphan_dependents(meta(&current.obj, "uid").as_deref().unwrap_or(""));
        }
        let out = st.delete_entry(ty, key, current);
        st.collect_garbage();
        Ok(out)
    }

    /// DELETE a collection: every object matching the selectors. Returns the items.
    pub fn delete_collection(
        &self,
        ty: &ResourceType,
        ns: Option<&str>,
        sel: &Selectors,
    ) -> Vec<Value> {
        let mut st = self.lock();
        let rv = st.rv;
        let keys: Vec<ObjKey> = st
            .view(&ty.store_key(), rv)
            .into_iter()
            .filter(|(k, o)| ns.is_none_or(|n| n == k.0) && sel.matches(o))
            .map(|(k, _)| k)
            .collect();
        let mut out = vec![];
        for key in keys {
            if let Ok(entry) = st.entry(ty, &key) {
                match st.delete_entry(ty, key, entry) {
                    Deleted::Pending(o) | Deleted::Removed(o) => out.push(o),
                    Deleted::AlreadyPending(_) => {}
                }
            }
        }
        st.collect_garbage();
        out
    }

    /// A raw object by store coordinates (for tests).
    pub fn peek(&self, group: &str, plural: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let st = self.lock();
        st.objects
            .get(&format!("{group}/{plural}"))
            .and_then(|m| m.get(&(ns.unwrap_or("").to_string(), name.to_string())))
            .map(|e| e.obj.clone())
    }
}

/// Adds apiVersion/kind (clients need them on list items and watch events).
fn with_type(mut obj: Value, ty: &ResourceType) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(ty.api_version()));
        m.insert("kind".into(), Value::String(ty.kind.clone()));
    }
    obj
}

/// Optimistic concurrency: a non-empty resourceVersion in the request must be the current one.
fn check_rv(body: &Value, current: &Value, ty: &ResourceType, name: &str) -> Result<(), ApiError> {
    match meta(body, "resourceVersion").filter(|r| !r.is_empty()) {
        Some(rv) if Some(&rv) != meta(current, "resourceVersion").as_ref() => {
            Err(ApiError::conflict(&ty.group, &ty.plural, name))
        }
        _ => Ok(()),
    }
}

/// The status subresource rule: a write to the main resource keeps the stored status, a
/// write to /status keeps everything but status.
fn scoped_write(ty: &ResourceType, current: &Value, mut new: Value, subresource: &str) -> Value {
    if !ty.status {
        return new;
    }
    if subresource == "status" {
        let mut out = current.clone();
        match new.get_mut("status").map(Value::take) {
            Some(s) if !s.is_null() => out["status"] = s,
            _ => {
                if let Some(m) = out.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // Keep the caller's resourceVersion for the precondition check already done.
        out
    } else {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        new
    }
}

impl State {
    fn register(&mut self, ty: ResourceType) {
        self.types
            .retain(|t| !(t.group == ty.group && t.version == ty.version && t.plural == ty.plural));
        self.types.push(ty);
    }

    fn entry(&self, ty: &ResourceType, key: &ObjKey) -> Result<Entry, ApiError> {
        self.objects
            .get(&ty.store_key())
            .and_then(|m| m.get(key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&ty.group, &ty.plural, &key.1))
    }

    /// The objects of one type as of resourceVersion `at`, undoing later history.
    fn view(&self, store_key: &str, at: u64) -> BTreeMap<ObjKey, Value> {
        let mut view: BTreeMap<ObjKey, Value> = self
            .objects
            .get(store_key)
            .map(|m| m.iter().map(|(k, e)| (k.clone(), e.obj.clone())).collect())
            .unwrap_or_default();
        for e in self.history.iter().rev().take_while(|e| e.rv > at) {
            if e.store_key != store_key {
                continue;
            }
            let key = (e.namespace.clone(), e.name.clone());
            match &e.prev {
                Some(p) => view.insert(key, p.clone()),
                None => view.remove(&key),
            };
        }
        view
    }

    fn emit(&mut self, ev: HistEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn create(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("body must be a JSON object"));
        }
        if body
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k != ty.kind)
        {
            return Err(ApiError::bad_request(format!("kind must be {}", ty.kind)));
        }
        let m = meta_mut(&mut body);
        let name = match m
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => {
                let prefix = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        &ty.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
                self.counter += 1;
                // Like the apiserver: five random-looking characters from a consonant/digit alphabet.
                const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let mut n = self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
                let mut suffix = String::new();
                for _ in 0..5 {
                    suffix.push(ALPHABET[(n % 27) as usize] as char);
                    n /= 27;
                }
                format!("{prefix}{suffix}")
            }
        };
        m.insert("name".into(), Value::String(name.clone()));
        if let Some(body_ns) = m
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            && Some(body_ns) != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(ns) = ns {
            m.insert("namespace".into(), Value::String(ns.to_string()));
        } else {
            m.remove("namespace");
        }
        if ty.status {
            // PrepareForCreate of types with a status subresource drops the status.
            if let Some(o) = body.as_object_mut() {
                o.remove("status");
            }
        }
        let mut managers = Managers::new();
        apply::record_update(
            None,
            &body,
            &mut managers,
            &opts.manager,
            &opts.subresource,
            &now_rfc3339(),
        );
        self.create_with(ty, ns, body, managers)
    }

    /// Stores a new object whose name/namespace are already set.
    fn create_with(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        managers: Managers,
    ) -> Result<Value, ApiError> {
        let name = meta(&obj, "name").unwrap_or_default();
        if ty.namespaced {
            let Some(ns) = ns else {
                return Err(ApiError::bad_request(
                    "a namespaced resource needs a namespace",
                ));
            };
            let ns_exists = self
                .objects
                .get("/namespaces")
                .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())));
            if !ns_exists {
                return Err(ApiError::not_found("", "namespaces", ns));
            }
        }
        let key = (ns.unwrap_or("").to_string(), name.clone());
        if self
            .objects
            .get(&ty.store_key())
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::already_exists(&ty.group, &ty.plural, &name));
        }
        self.counter += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.counter);
        normalize(ty, &mut obj);
        validate(ty, None, &obj)?;
        let rv = self.next_rv();
        let gen_tracked = ty.generation;
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), Value::String(uid));
        m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        if gen_tracked {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        let obj = with_type(obj, ty);
        let mut obj = obj;
        obj["metadata"]["managedFields"] = apply::render(&managers, &ty.api_version());
        self.objects.entry(ty.store_key()).or_default().insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                managers,
            },
        );
        self.emit(HistEvent {
            rv,
            store_key: ty.store_key(),
            namespace: key.0,
            name: key.1,
            ty: EventType::Added,
            obj: obj.clone(),
            prev: None,
        });
        self.on_crd_change(ty, &obj);
        self.collect_garbage_if_owned(&obj);
        Ok(obj)
    }

    /// Completes an update: server-owned fields, validation, generation, the no-op rule,
    /// finalizer-driven removal. Returns (object, changed).
    fn finish_write(
        &mut self,
        ty: &ResourceType,
        key: ObjKey,
        current: Option<Entry>,
        mut new: Value,
        managers: Managers,
    ) -> Result<(Value, bool), ApiError> {
        let current = current.expect("updates have a current object");
        let old = &current.obj;
        normalize(ty, &mut new);
        validate(ty, Some(old), &new)?;
        // Server-owned metadata cannot be changed by clients.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
            "resourceVersion",
        ] {
            let m = meta_mut(&mut new);
            match old.get("metadata").and_then(|om| om.get(f)) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        if ty.generation && spec_part(ty, &new) != spec_part(ty, old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        let mut new = with_type(new, ty);
        new["metadata"]["managedFields"] = apply::render(&managers, &ty.api_version());
        if same_ignoring_rv(&new, old) {
            // Nothing changed: no new resourceVersion, no watch event.
            return Ok((old.clone(), false));
        }
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let finalizers_empty = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let store_key = ty.store_key();
        if deleting && finalizers_empty {
            // The last finalizer is gone: the object disappears now.
            if let Some(m) = self.objects.get_mut(&store_key) {
                m.remove(&key);
            }
            self.emit(HistEvent {
                rv,
                store_key,
                namespace: key.0,
                name: key.1,
                ty: EventType::Deleted,
                obj: new.clone(),
                prev: Some(old.clone()),
            });
            self.on_crd_change(ty, &new);
            self.collect_garbage();
            return Ok((new, true));
        }
        self.objects.entry(store_key.clone()).or_default().insert(
            key.clone(),
            Entry {
                obj: new.clone(),
                managers,
            },
        );
        self.emit(HistEvent {
            rv,
            store_key,
            namespace: key.0,
            name: key.1,
            ty: EventType::Modified,
            obj: new.clone(),
            prev: Some(old.clone()),
        });
        self.on_crd_change(ty, &new);
        self.collect_garbage_if_owned(&new);
        Ok((new, true))
    }

    fn delete_entry(&mut self, ty: &ResourceType, key: ObjKey, current: Entry) -> Deleted {
        let old = current.obj.clone();
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Deleted::AlreadyPending(old);
            }
            let mut new = old.clone();
            let rv = self.next_rv();
            bump_generation(&mut new);
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
            self.objects.entry(ty.store_key()).or_default().insert(
                key.clone(),
                Entry {
                    obj: new.clone(),
                    managers: current.managers,
                },
            );
            self.emit(HistEvent {
                rv,
                store_key: ty.store_key(),
                namespace: key.0,
                name: key.1,
                ty: EventType::Modified,
                obj: new.clone(),
                prev: Some(old),
            });
            return Deleted::Pending(new);
        }
        let rv = self.next_rv();
        let mut last = old.clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        if let Some(m) = self.objects.get_mut(&ty.store_key()) {
            m.remove(&key);
        }
        self.emit(HistEvent {
            rv,
            store_key: ty.store_key(),
            namespace: key.0.clone(),
            name: key.1.clone(),
            ty: EventType::Deleted,
            obj: last.clone(),
            prev: Some(old),
        });
        self.on_crd_change(ty, &last);
        if ty.group.is_empty() && ty.plural == "namespaces" {
            // Namespace deletion removes everything in it.
            self.delete_namespace_contents(&key.1);
        }
        Deleted::Removed(last)
    }

    fn delete_namespace_contents(&mut self, ns: &str) {
        let types = self.types.clone();
        for ty in types.iter().filter(|t| t.namespaced) {
            let keys: Vec<ObjKey> = self
                .objects
                .get(&ty.store_key())
                .map(|m| m.keys().filter(|k| k.0 == ns).cloned().collect())
                .unwrap_or_default();
            for key in keys {
                if let Ok(entry) = self.entry(ty, &key) {
                    self.delete_entry(ty, key, entry);
                }
            }
        }
    }

    fn type_for_store_key(&self, store_key: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.store_key() == store_key)
            .cloned()
    }

    /// Background garbage collection: an object whose every owner is gone is deleted
    /// (finalizers respected), repeatedly, so chains of dependents go too.
    fn collect_garbage(&mut self) {
        loop {
            let live: std::collections::HashSet<String> = self
                .objects
                .values()
                .flat_map(|m| m.values())
                .filter_map(|e| meta(&e.obj, "uid"))
                .collect();
            let mut doomed = vec![];
            for (store_key, objs) in &self.objects {
                for (key, e) in objs {
                    let owners = e
                        .obj
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array);
                    let Some(owners) = owners.filter(|o| !o.is_empty()) else {
                        continue;
                    };
                    let all_gone = owners.iter().all(|o| {
                        o.get("uid")
                            .and_then(Value::as_str)
                            .is_none_or(|u| !live.contains(u))
                    });
                    if all_gone && e.obj.pointer("/metadata/deletionTimestamp").is_none() {
                        doomed.push((store_key.clone(), key.clone()));
                    }
                }
            }
            if doomed.is_empty() {
                return;
            }
            for (store_key, key) in doomed {
                let Some(ty) = self.type_for_store_key(&store_key) else {
                    continue;
                };
                if let Ok(entry) = self.entry(&ty, &key) {
                    self.delete_entry(&ty, key, entry);
                }
            }
        }
    }

    /// A written object whose owners are all absent (e.g. the owner was deleted just before
    /// the dependent was created) is collected, as the real collector eventually would.
    fn collect_garbage_if_owned(&mut self, obj: &Value) {
        if obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
        {
            self.collect_garbage();
        }
    }

    /// `propagationPolicy: Orphan`: dependents lose their reference to the owner.
    fn orphan_dependents(&mut self, owner_uid: &str) {
        let mut targets = vec![];
        for (store_key, objs) in &self.objects {
            for (key, e) in objs {
                let refs = e
                    .obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array);
                if refs.is_some_and(|r| {
                    r.iter()
                        .any(|o| o.get("uid").and_then(Value::as_str) == Some(owner_uid))
                }) {
                    targets.push((store_key.clone(), key.clone()));
                }
            }
        }
        for (store_key, key) in targets {
            let Some(ty) = self.type_for_store_key(&store_key) else {
                continue;
            };
            let Ok(entry) = self.entry(&ty, &key) else {
                continue;
            };
            let mut new = entry.obj.clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|o| o.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            let managers = entry.managers.clone();
            let _ = self.finish_write(&ty, key, Some(entry), new, managers);
        }
    }

    /// A stored CRD makes its resource served, like the apiextensions apiserver.
    fn on_crd_change(&mut self, ty: &ResourceType, obj: &Value) {
        if ty.group != "apiextensions.k8s.io" || ty.plural != "customresourcedefinitions" {
            return;
        }
        let Ok(crd) = serde_json::from_value(obj.clone()) else {
            return;
        };
        for t in ResourceType::from_crd(&crd) {
            self.register(t);
        }
    }
}

/// Type-specific defaulting the apiserver does on every write.
fn normalize(ty: &ResourceType, obj: &mut Value) {
    if ty.group.is_empty() && ty.plural == "secrets" {
        if let Some(Value::Object(string_data)) =
            obj.as_object_mut().and_then(|o| o.remove("stringData"))
        {
            if !obj.get("data").is_some_and(Value::is_object) {
                obj["data"] = json!({});
            }
            for (k, v) in string_data {
                let s = v.as_str().unwrap_or_default();
                obj["data"][k.as_str()] = Value::String(base64(s.as_bytes()));
            }
        }
        if obj.get("type").is_none_or(Value::is_null) {
            obj["type"] = Value::String("Opaque".into());
        }
    }
}

/// Validation the operator relies on: immutable Secrets and finalizers during deletion.
fn validate(ty: &ResourceType, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    let name = meta(new, "name").unwrap_or_default();
    if let Some(old) = old {
        if ty.group.is_empty()
            && ty.plural == "secrets"
            && old.get("immutable") == Some(&Value::Bool(true))
        {
            if new.get("data") != old.get("data") {
                return Err(ApiError::invalid(
                    &ty.kind,
                    &name,
                    "data: Forbidden: field is immutable when `immutable` is set",
                ));
            }
            if new.get("immutable") != Some(&Value::Bool(true)) {
                return Err(ApiError::invalid(
                    &ty.kind,
                    &name,
                    "immutable: Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f = old
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let new_f = new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if new_f.iter().any(|f| !old_f.contains(f)) {
                return Err(ApiError::invalid(
                    &ty.kind,
                    &name,
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
    }
    Ok(())
}
