//! Integer formats the API server knows. schemars names Rust's widths
//! (`uint64`, `uint32`, `uint16`); the API server knows only `int32` and
//! `int64` for integers, ignores any other, and warns about each at every
//! `kubectl apply` and `helm install` of the CRD. The API types run
//! [`kubernetes_formats`] on their schemas (`#[schemars(transform)]`), so the
//! CRD carries only formats Kubernetes knows.

use schemars::{Schema, transform::transform_subschemas};
use serde_json::Value;

/// Rewrites every integer `format` in `schema` and its subschemas to the
/// Kubernetes format that holds all of its values, or drops it, keeping
/// `minimum: 0` for unsigned types so validation does not loosen.
pub(crate) fn kubernetes_formats(schema: &mut Schema) {
    if let Some(node) = schema.as_object_mut() {
        let format = node.get("format").and_then(Value::as_str);
        if let Some((known, unsigned)) = format.and_then(kubernetes_integer_format) {
            match known {
                Some(known) => node.insert("format".into(), known.into()),
                None => node.remove("format"),
            };
            if unsigned {
                node.entry("minimum").or_insert(0.into());
            }
        }
    }
    transform_subschemas(&mut kubernetes_formats, schema);
}

/// For a format schemars gives a Rust integer type: the Kubernetes format
/// to use instead (`None`: none fits) and whether the type is unsigned.
/// `None` for formats Kubernetes knows, and for non-integer ones.
///
/// `int32` only where every value fits: the API server refuses values
/// outside a declared `int32`, so `u32` becomes `int64`. `u64` becomes
/// `int64` too: the API server stores every integer as an `int64`, so no
/// larger value could be stored under any format.
fn kubernetes_integer_format(format: &str) -> Option<(Option<&'static str>, bool)> {
    match format {
        "int8" | "int16" => Some((Some("int32"), false)),
        "uint8" | "uint16" => Some((Some("int32"), true)),
        "int" => Some((Some("int64"), false)),
        "uint32" | "uint64" | "uint" => Some((Some("int64"), true)),
        "int128" => Some((None, false)),
        "uint128" => Some((None, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde_json::json;

    #[derive(JsonSchema)]
    #[schemars(transform = super::kubernetes_formats)]
    #[allow(dead_code)]
    struct Widths {
        small: u16,
        count: u32,
        version: Option<u64>,
        versions: Vec<u64>,
        #[schemars(range(min = 1, max = 100))]
        limit: u32,
        delta: i16,
        generation: i64,
        big: u128,
        ratio: f64,
    }

    #[test]
    fn rust_widths_become_kubernetes_formats_without_losing_bounds() {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<Widths>();
        let props = &schema.as_value()["properties"];
        assert_eq!(
            props["small"],
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 65535})
        );
        assert_eq!(
            props["count"],
            json!({"type": "integer", "format": "int64", "minimum": 0})
        );
        assert_eq!(props["version"]["format"], "int64");
        assert_eq!(props["version"]["minimum"], 0);
        assert_eq!(
            props["versions"]["items"],
            json!({"type": "integer", "format": "int64", "minimum": 0})
        );
        assert_eq!(
            props["limit"],
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 100})
        );
        assert_eq!(props["delta"]["format"], "int32");
        assert_eq!(props["generation"]["format"], "int64");
        assert_eq!(props["big"], json!({"type": "integer", "minimum": 0}));
        assert_eq!(props["ratio"]["format"], "double");
    }
}
