//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.
//!
//! Strategic merge patch is implemented for the fields operators touch: maps merge
//! recursively (`null` deletes a key), `$patch: replace|delete` directives on maps, and lists
//! merge by key where Kubernetes declares a merge key (`containers`, `initContainers`,
//! `env`, `volumes`, `imagePullSecrets` by `name`; `volumeMounts` by `mountPath`; `ports`
//! by `containerPort`; `conditions` by `type`; `ownerReferences` by `uid`); `finalizers` is a
//! set union. Every other list is replaced, which is what the apiserver does for atomic lists.
//! Other directives (`$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList`) are ignored.

use super::error::ApiError;
use serde_json::{Map, Value};

/// Which PATCH flavour a request carries, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply, handled in `apply.rs`).
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type header to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }

    /// The name used in the write log.
    pub fn verb_name(self) -> &'static str {
        match self {
            Self::Merge => "patch-merge",
            Self::Json => "patch-json",
            Self::Strategic => "patch-strategic",
            Self::Apply => "apply",
        }
    }
}

/// Applies a merge, JSON or strategic patch to `target` (apply is not handled here).
pub fn apply_patch(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge => {
            let patch: Value = parse_json(body)?;
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchKind::Json => {
            let mut ops: Vec<Value> = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // Like the apiserver's json-patch library, `test` of a missing path
            // against `null` succeeds (kube's finalizer helper relies on it).
            ops.retain(|op| {
                let missing_null_test = op["op"] == "test"
                    && op["value"].is_null()
                    && op["path"]
                        .as_str()
                        .is_some_and(|p| target.pointer(p).is_none());
                !missing_null_test
            });
            let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // The apiserver answers 422 when a `test` fails or a path does not exist.
            json_patch::patch(target, &patch).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })
        }
        PatchKind::Strategic => {
            let patch: Value = parse_json(body)?;
            strategic_merge(target, &patch, "");
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::internal("apply is not a plain patch")),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in patch body: {e}")))
}

/// The merge key Kubernetes declares for a list field, if any.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Strategic merge of `patch` into `target`; `field` is the key `target` sits under.
pub fn strategic_merge(target: &mut Value, patch: &Value, field: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v, k),
            Value::Array(items) => {
                let _ = field;
                match (t.get_mut(k), merge_key(k)) {
                    (Some(Value::Array(existing)), Some(key)) => merge_list(existing, items, key),
                    (Some(Value::Array(existing)), None) if k == "finalizers" => {
                        for item in items {
                            if !existing.contains(item) {
                                existing.push(item.clone());
                            }
                        }
                    }
                    _ => {
                        // Strip directives from new elements so they never land in the object.
                        let cleaned: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .cloned()
                            .collect();
                        t.insert(k.clone(), Value::Array(cleaned));
                    }
                }
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Merges list elements by `key`: matching elements merge, `$patch: delete` removes, new ones append.
fn merge_list(existing: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key).cloned();
        let pos = id
            .as_ref()
            .and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], item, ""),
            (None, false) => existing.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `$patch: delete` inside a keyed list removes the element; other elements stay.
    #[test]
    fn strategic_delete_directive_in_keyed_list() {
        let mut target = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        strategic_merge(
            &mut target,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            "",
        );
        assert_eq!(target, json!({"spec": {"containers": [{"name": "b"}]}}));
    }
}
