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
    /// uids some object has named as its owner: only their deletion can make
    /// garbage, so only it pays for a collection over every object.
    owners_seen: std::collections::HashSet<String>,
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

mod gc;
mod rules;
mod state;

use rules::{check_rv, scoped_write};

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
                owners_seen: Default::default(),
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
            Some(at) if at < st.rv => {
                let (ns, name) = (key.0.as_str(), key.1.as_str());
                st.select(
                    &ty.store_key(),
                    at.max(st.compacted),
                    Some(ns),
                    None,
                    None,
                    |o| meta(o, "name").as_deref() == Some(name),
                )
                .0
                .pop()
                .map(|(_, o)| o)
            }
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
        let (found, more) = st.select(&ty.store_key(), at, ns, after, limit, |o| sel.matches(o));
        // The continue token names the last returned item.
        let next = more.then(|| found.last().map(|(k, _)| k.clone())).flatten();
        let items = found.into_iter().map(|(_, o)| with_type(o, ty)).collect();
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
                    .select(&key, at, None, None, None, |_| true)
                    .0
                    .into_iter()
                    .map(|(_, o)| with_type(o, ty))
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
                rules::reject_rv_on_create(&applied)?;
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
        let uid = meta(&current.obj, "uid").unwrap_or_default();
        let out = st.delete_entry(ty, key, current);
        st.collect_garbage_after(&uid);
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
            .select(&ty.store_key(), rv, ns, None, None, |o| sel.matches(o))
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut out = vec![];
        let mut uids = vec![];
        for key in keys {
            if let Ok(entry) = st.entry(ty, &key) {
                uids.push(meta(&entry.obj, "uid").unwrap_or_default());
                match st.delete_entry(ty, key, entry) {
                    Deleted::Pending(o) | Deleted::Removed(o) => out.push(o),
                    Deleted::AlreadyPending(_) => {}
                }
            }
        }
        if uids.iter().any(|u| st.owners_seen.contains(u)) {
            st.collect_garbage();
        }
        out
    }

    /// Runs `f` on every stored object of `group/plural`, under the lock and
    /// without copying them (for a benchmark's progress checks).
    pub fn inspect_all<R>(
        &self,
        group: &str,
        plural: &str,
        mut f: impl FnMut(&Value) -> R,
    ) -> Vec<R> {
        let st = self.lock();
        st.objects
            .get(&format!("{group}/{plural}"))
            .map(|m| m.values().map(|e| f(&e.obj)).collect())
            .unwrap_or_default()
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
