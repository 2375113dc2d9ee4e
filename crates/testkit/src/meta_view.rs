//! Metadata-only responses (`PartialObjectMetadata`), chosen by the `Accept` header.
//!
//! kube's `Api::get_metadata` / `list_metadata` / `watch_metadata` (and so
//! `kube::runtime::metadata_watcher`) ask for
//! `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`. The apiserver then
//! answers with `meta.k8s.io/v1` objects carrying only `metadata`. Other `as=` targets
//! (kubectl's `Table`) are skipped in favour of the next acceptable media type; if none is
//! left the answer is 406, like the apiserver's.

use super::error::ApiError;
use serde_json::{Value, json};

/// What shape the client asked the body to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Whole objects (the default).
    Full,
    /// `as=PartialObjectMetadata` (single objects and watch events).
    Meta,
    /// `as=PartialObjectMetadataList` (lists).
    MetaList,
}

/// Picks the first media type of the `Accept` header the fake can serve.
pub fn from_accept(accept: &str) -> Result<View, ApiError> {
    if accept.trim().is_empty() {
        return Ok(View::Full);
    }
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        if !matches!(base, "application/json" | "*/*" | "application/*" | "") {
            continue;
        }
        let (mut target, mut group, mut version) = (None, None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("as", v)) => target = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        let meta_group = group == Some("meta.k8s.io") && matches!(version, Some("v1" | "v1beta1"));
        match target {
            None => return Ok(View::Full),
            Some("PartialObjectMetadata") if meta_group => return Ok(View::Meta),
            Some("PartialObjectMetadataList") if meta_group => return Ok(View::MetaList),
            Some(_) => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1 (got {accept:?})"
        ),
    ))
}

/// One object as `PartialObjectMetadata`.
pub fn object(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list (`{"metadata": .., "items": [..]}`) as `PartialObjectMetadataList`.
pub fn list(list: &Value) -> Value {
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(object).collect())
        .unwrap_or_default();
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadataList",
        "metadata": list.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

/// Renders a successful response body for `view`: lists and objects are converted,
/// `Status` bodies (e.g. from delete) are left alone.
pub fn render(view: View, body: Value) -> Value {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if view == View::Full || kind == "Status" {
        return body;
    }
    if body.get("items").is_some_and(Value::is_array) && kind.ends_with("List") {
        list(&body)
    } else {
        object(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        assert_eq!(from_accept("").unwrap(), View::Full);
        assert_eq!(from_accept("application/json").unwrap(), View::Full);
        assert_eq!(
            from_accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
                .unwrap(),
            View::MetaList
        );
        assert_eq!(
            from_accept("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1").unwrap(),
            View::Meta
        );
        // kubectl: Table first, then plain JSON.
        assert_eq!(
            from_accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            View::Full
        );
        assert_eq!(
            from_accept("application/json;as=Table;v=v1;g=meta.k8s.io")
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            from_accept("application/vnd.kubernetes.protobuf")
                .unwrap_err()
                .code,
            406
        );
    }
}
