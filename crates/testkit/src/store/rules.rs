//! The apiserver's per-write rules, as pure functions: defaulting, validation, the
//! status-subresource split, optimistic concurrency, generation and the no-op test.

use super::meta;
use crate::error::ApiError;
use crate::resources::ResourceType;
use serde_json::{Value, json};

/// Standard base64, for Secret `stringData` (avoids another dependency for 15 lines).
pub(super) fn base64(bytes: &[u8]) -> String {
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
pub(super) fn spec_part(ty: &ResourceType, v: &Value) -> Value {
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
pub(super) fn bump_generation(obj: &mut Value) {
    if let Some(g) = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// Object equality for the no-op rule: everything but resourceVersion.
pub(super) fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// Optimistic concurrency: a non-empty resourceVersion in the request must be the current one.
pub(super) fn check_rv(
    body: &Value,
    current: &Value,
    ty: &ResourceType,
    name: &str,
) -> Result<(), ApiError> {
    match meta(body, "resourceVersion").filter(|r| !r.is_empty()) {
        Some(rv) if Some(&rv) != meta(current, "resourceVersion").as_ref() => {
            Err(ApiError::conflict(&ty.group, &ty.plural, name))
        }
        _ => Ok(()),
    }
}

/// The status subresource rule: a write to the main resource keeps the stored status, a
/// write to /status keeps everything but status.
pub(super) fn scoped_write(
    ty: &ResourceType,
    current: &Value,
    mut new: Value,
    subresource: &str,
) -> Value {
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

/// Type-specific defaulting the apiserver does on every write.
pub(super) fn normalize(ty: &ResourceType, obj: &mut Value) {
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
pub(super) fn validate(
    ty: &ResourceType,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    let name = meta(new, "name").unwrap_or_default();
    if let Some(old) = old {
        if ty.group.is_empty() && ty.plural == "secrets" && new.get("type") != old.get("type") {
            let t = new.get("type").and_then(Value::as_str).unwrap_or("");
            return Err(ApiError::invalid(
                &ty.kind,
                &name,
                format!("type: Invalid value: \"{t}\": field is immutable"),
            ));
        }
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

/// Objects to be created must not carry a resourceVersion (typically a cached copy being
/// re-created): the apiserver's storage answers 500 with this message. Unparsable values
/// are ignored, as there.
pub(super) fn reject_rv_on_create(body: &Value) -> Result<(), ApiError> {
    match meta(body, "resourceVersion").and_then(|r| r.parse::<u64>().ok()) {
        Some(rv) if rv != 0 => Err(ApiError::new(
            500,
            "InternalError",
            "resourceVersion should not be set on objects to be created",
        )),
        _ => Ok(()),
    }
}
