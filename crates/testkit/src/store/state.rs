//! Writes under the store lock: create, update completion, deletion, history events.

use super::rules::{
    bump_generation, normalize, reject_rv_on_create, same_ignoring_rv, spec_part, validate,
};
use super::{
    Deleted, Entry, EventType, HistEvent, ObjKey, State, WriteOpts, meta, meta_mut, now_rfc3339,
    with_type,
};
use crate::apply::{self, Managers};
use crate::error::ApiError;
use crate::resources::ResourceType;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

impl State {
    pub(super) fn register(&mut self, ty: ResourceType) {
        self.types
            .retain(|t| !(t.group == ty.group && t.version == ty.version && t.plural == ty.plural));
        self.types.push(ty);
    }

    pub(super) fn entry(&self, ty: &ResourceType, key: &ObjKey) -> Result<Entry, ApiError> {
        self.objects
            .get(&ty.store_key())
            .and_then(|m| m.get(key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&ty.group, &ty.plural, &key.1))
    }

    /// The objects of one type as of resourceVersion `at` that lie in `ns` (every
    /// namespace: None), come after `after` in key order and satisfy `keep`: at most
    /// `limit` of them, in key order, and whether more remain.
    ///
    /// Only the matching objects are cloned: the current objects are walked in key
    /// order from the start of the range (a namespace is a contiguous key range, as
    /// it is in etcd), and the few keys changed after `at` are overlaid from the
    /// history. A page of a list therefore costs its own size plus the history
    /// since `at`, not the size of the whole type.
    pub(super) fn select(
        &self,
        store_key: &str,
        at: u64,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<(ObjKey, Value)>, bool) {
        use std::cmp::Ordering;
        use std::ops::Bound;
        let in_range = |k: &ObjKey| ns.is_none_or(|n| n == k.0) && after.is_none_or(|a| k > a);
        // Keys changed after `at`, with their state at `at` (None: absent then).
        // Walking back from the newest event, the oldest one's `prev` wins.
        let mut overlay: BTreeMap<ObjKey, Option<&Value>> = BTreeMap::new();
        for e in self.history.iter().rev().take_while(|e| e.rv > at) {
            if e.store_key != store_key {
                continue;
            }
            let key = (e.namespace.clone(), e.name.clone());
            if in_range(&key) {
                overlay.insert(key, e.prev.as_ref());
            }
        }
        let start = match (ns, after) {
            (_, Some(a)) if ns.is_none_or(|n| n <= a.0.as_str()) => Bound::Excluded(a.clone()),
            (Some(n), _) => Bound::Included((n.to_string(), String::new())),
            (None, _) => Bound::Unbounded,
        };
        let empty = BTreeMap::new();
        let objects = self.objects.get(store_key).unwrap_or(&empty);
        let mut current = objects
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| ns.is_none_or(|n| n == k.0))
            .peekable();
        let mut changed = overlay.iter().map(|(k, o)| (k, *o)).peekable();
        let (mut out, mut more) = (Vec::new(), false);
        loop {
            // Keys are cloned only for objects the filter keeps: a selective
            // LIST in a big namespace scans many objects and returns few.
            let (key, obj): (&ObjKey, Option<&Value>) = match (current.peek(), changed.peek()) {
                (None, None) => break,
                (Some(_), None) => {
                    let (k, e) = current.next().expect("peeked");
                    (k, Some(&e.obj))
                }
                (None, Some(_)) => {
                    let (k, o) = changed.next().expect("peeked");
                    (k, o)
                }
                (Some((ck, _)), Some((ok, _))) => match (*ck).cmp(ok) {
                    Ordering::Less => {
                        let (k, e) = current.next().expect("peeked");
                        (k, Some(&e.obj))
                    }
                    Ordering::Greater => {
                        let (k, o) = changed.next().expect("peeked");
                        (k, o)
                    }
                    Ordering::Equal => {
                        current.next();
                        let (k, o) = changed.next().expect("peeked");
                        (k, o)
                    }
                },
            };
            let Some(obj) = obj.filter(|o| keep(o)) else {
                continue;
            };
            if limit.is_some_and(|l| out.len() >= l) {
                more = true;
                break;
            }
            out.push((key.clone(), obj.clone()));
        }
        (out, more)
    }

    pub(super) fn emit(&mut self, ev: HistEvent) {
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

    pub(super) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(super) fn create(
        &mut self,
        ty: &ResourceType,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("body must be a JSON object"));
        }
        reject_rv_on_create(&body)?;
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
    pub(super) fn create_with(
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
    pub(super) fn finish_write(
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
            self.collect_garbage_after(&meta(&new, "uid").unwrap_or_default());
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

    pub(super) fn delete_entry(
        &mut self,
        ty: &ResourceType,
        key: ObjKey,
        current: Entry,
    ) -> Deleted {
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

    /// A stored CRD makes its resource served, like the apiextensions apiserver.
    pub(super) fn on_crd_change(&mut self, ty: &ResourceType, obj: &Value) {
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
