//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Each object keeps, per (manager, operation, subresource), the set of leaf field paths
//! that manager owns. The rules mirrored from the apiserver:
//! - an apply sets every field in the applied configuration and takes ownership of it;
//! - a field the applying manager owned before but no longer applies is removed from the
//!   object, unless another manager also owns it;
//! - applying a value that differs from a field owned by another manager is a 409
//!   Conflict, unless `force=true`, which transfers ownership;
//! - applying the same value as another manager makes ownership shared;
//! - non-apply writes (create, update, patch) take ownership of the fields they change,
//!   taking them away from other managers.
//!
//! Simplification: maps are granular (each key is its own field) but lists are atomic
//! (one field for the whole list), the behaviour of `x-kubernetes-list-type: atomic`.

use super::error::ApiError;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A field path: the keys from the object root to a leaf.
pub type FieldPath = Vec<String>;

/// Identifies one managedFields entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManagerKey {
    /// The field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: String,
}

/// The fields a manager owns and when its set last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Leaf paths owned.
    pub paths: BTreeSet<FieldPath>,
    /// RFC 3339 time of the last change to `paths`.
    pub time: String,
}

/// All managedFields entries of one object.
pub type Managers = BTreeMap<ManagerKey, Owned>;

/// Fields the server owns; no manager ever owns or removes them.
fn server_owned(path: &[String]) -> bool {
    match path {
        [top] if top == "apiVersion" || top == "kind" => true,
        [m, f, ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
                | "generateName"
        ),
        _ => false,
    }
}

/// Collects the leaf paths of `v`: scalars, lists (atomic) and empty maps are leaves.
pub fn leaf_paths(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ if !prefix.is_empty() && !server_owned(prefix) => {
                out.insert(prefix.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut vec![], &mut out);
    out
}

/// The value at `path`, if present.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_path(v: &mut Value, path: &[String], value: Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = Value::Object(Map::new());
        }
        cur = cur.get_mut(k).expect("inserted above");
    }
    cur[path[path.len() - 1].as_str()] = value;
}

/// Removes the field at `path`, then prunes maps the removal left empty (but never the root).
fn remove_path(v: &mut Value, path: &[String]) {
    fn rec(v: &mut Value, path: &[String]) {
        let Some(m) = v.as_object_mut() else { return };
        if path.len() == 1 {
            m.remove(&path[0]);
            return;
        }
        if let Some(child) = m.get_mut(&path[0]) {
            rec(child, &path[1..]);
            if child.as_object().is_some_and(Map::is_empty) {
                m.remove(&path[0]);
            }
        }
    }
    rec(v, path)
}

/// Two paths overlap when one is a prefix of the other (a map versus a field inside it).
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn dotted(p: &[String]) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// Server-side apply of `applied` by `manager` onto `current` (None: the object is created).
/// Returns the new object; `managers` is updated in place.
pub fn server_side_apply(
    current: Option<&Value>,
    managers: &mut Managers,
    applied: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let mut obj = current.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": applied.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": applied.get("kind").cloned().unwrap_or(Value::Null),
            "metadata": applied.get("metadata").map(|m| json!({
                "name": m.get("name").cloned().unwrap_or(Value::Null),
                "namespace": m.get("namespace").cloned().unwrap_or(Value::Null),
            })).unwrap_or_else(|| json!({})),
        })
    });
    let applied_paths = leaf_paths(applied);
    let me = ManagerKey {
        manager: manager.to_string(),
        operation: "Apply",
        subresource: subresource.to_string(),
    };

    // Conflicts: another manager owns a field we apply with a different value.
    let mut conflicts = vec![];
    for (key, owned) in managers.iter_mut() {
        if key.manager == manager {
            continue;
        }
        let mut taken = vec![];
        for p in &owned.paths {
            for q in applied_paths.iter().filter(|q| overlaps(p, q)) {
                if get_path(&obj, q) != get_path(applied, q) {
                    conflicts.push(format!("conflict with \"{}\": {}", key.manager, dotted(q)));
                    taken.push(p.clone());
                }
            }
        }
        if force && !taken.is_empty() {
            for p in taken {
                owned.paths.remove(&p);
            }
            owned.time = now.to_string();
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        conflicts.dedup();
        let n = conflicts.len();
        let plural = if n == 1 { "conflict" } else { "conflicts" };
        return Err(ApiError::new(
            409,
            "Conflict",
            format!("Apply failed with {n} {plural}: {}", conflicts.join("\n")),
        ));
    }

    // Fields this manager stopped applying are removed unless someone else still owns them.
    let previous = managers
        .get(&me)
        .map(|o| o.paths.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied_paths) {
        let shared = managers
            .iter()
            .any(|(k, o)| *k != me && o.paths.iter().any(|q| overlaps(p, q)));
        let still_applied_below = applied_paths.iter().any(|q| overlaps(p, q));
        if !shared && !still_applied_below {
            remove_path(&mut obj, p);
        }
    }
    for q in &applied_paths {
        let value = get_path(applied, q).cloned().unwrap_or(Value::Null);
        set_path(&mut obj, q, value);
    }
    if previous != applied_paths {
        if applied_paths.is_empty() {
            managers.remove(&me);
        } else {
            managers.insert(
                me,
                Owned {
                    paths: applied_paths,
                    time: now.to_string(),
                },
            );
        }
    }
    managers.retain(|_, o| !o.paths.is_empty());
    Ok(obj)
}

/// Records a non-apply write: `manager` takes the fields it changed from everyone else.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    managers: &mut Managers,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    let new_paths = leaf_paths(new);
    let old_paths = old.map(leaf_paths).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = new_paths
        .iter()
        .filter(|p| old.is_none_or(|o| get_path(o, p) != get_path(new, p)))
        .cloned()
        .collect();
    let removed: Vec<FieldPath> = old_paths.difference(&new_paths).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    let me = ManagerKey {
        manager: manager.to_string(),
        operation: "Update",
        subresource: subresource.to_string(),
    };
    for (key, owned) in managers.iter_mut() {
        let before = owned.paths.len();
        owned.paths.retain(|p| {
            let touched = changed.iter().chain(removed.iter()).any(|c| overlaps(p, c));
            // A field that no longer exists is owned by nobody; a changed one moves to `me`.
            *key == me || !touched
        });
        if owned.paths.len() != before {
            owned.time = now.to_string();
        }
    }
    if !changed.is_empty() {
        let entry = managers.entry(me).or_default();
        entry.paths.extend(changed);
        entry.time = now.to_string();
    }
    // Drop ownership of fields that vanished, including for `me`.
    for owned in managers.values_mut() {
        owned.paths.retain(|p| get_path(new, p).is_some());
    }
    managers.retain(|_, o| !o.paths.is_empty());
}

/// Renders the entries as `metadata.managedFields` (FieldsV1 trees, lists shown atomic).
pub fn render(managers: &Managers, api_version: &str) -> Value {
    let entries: Vec<Value> = managers
        .iter()
        .map(|(key, owned)| {
            let mut tree = Value::Object(Map::new());
            for p in &owned.paths {
                let keys: Vec<String> = p.iter().map(|s| format!("f:{s}")).collect();
                let mut cur = &mut tree;
                for k in keys {
                    if !cur.get(&k).is_some_and(Value::is_object) {
                        cur[k.as_str()] = Value::Object(Map::new());
                    }
                    cur = cur.get_mut(&k).expect("inserted above");
                }
            }
            let mut entry = json!({
                "manager": key.manager,
                "operation": key.operation,
                "apiVersion": api_version,
                "time": owned.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": tree,
            });
            if !key.subresource.is_empty() {
                entry["subresource"] = Value::String(key.subresource.clone());
            }
            entry
        })
        .collect();
    Value::Array(entries)
}
