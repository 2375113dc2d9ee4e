//! Copies of a projected Secret in other namespaces (`consumers.<group>.
//! namespaces`): built from the rotation's own projected Secret, so they
//! say exactly what it says (same files, same revision), and told apart
//! from Secrets keyrotor does not own by their labels (an owner reference
//! cannot cross namespaces).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::wire::{self as k, SOURCE_NAMESPACE_LABEL};

/// Which rotation a copy belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub namespace: String,
    pub rotation: String,
}

/// The copy of `home` (a projected Secret) that namespace `ns` holds.
pub fn render(home: &Secret, ns: &str, source: &Source) -> Secret {
    let mut labels = home.metadata.labels.clone().unwrap_or_default();
    labels.insert(k::ROTATION_LABEL.into(), source.rotation.clone());
    labels.insert(SOURCE_NAMESPACE_LABEL.into(), source.namespace.clone());
    let annotations: BTreeMap<String, String> = home
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(k::GROUP))
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: home.metadata.name.clone(),
            namespace: Some(ns.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: home.data.clone(),
        ..Default::default()
    }
}

/// The rotation a Secret is a copy of, from its labels (`None`: not a copy).
pub fn source_of(secret: &Secret) -> Option<Source> {
    let labels = secret.metadata.labels.as_ref()?;
    Some(Source {
        namespace: labels.get(SOURCE_NAMESPACE_LABEL)?.clone(),
        rotation: labels.get(k::ROTATION_LABEL)?.clone(),
    })
}

/// A digest of what consumers read (the Secret's files): two Secrets with
/// the same digest give consumers the same content. Never shown anywhere;
/// it only tells a stale or edited copy from a current one.
pub fn digest(secret: &Secret) -> [u8; 32] {
    let mut h = Sha256::new();
    for (file, value) in secret.data.iter().flatten() {
        h.update((file.len() as u64).to_be_bytes());
        h.update(file.as_bytes());
        h.update((value.0.len() as u64).to_be_bytes());
        h.update(&value.0);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn home() -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "api-key", "namespace": "orders",
                "labels": {"keyrotor.dev/rotation": "api", "keyrotor.dev/role": "projection"},
                "annotations": {"keyrotor.dev/revision": "4", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "ownerReferences": [{"apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation", "name": "api", "uid": "u"}],
                "resourceVersion": "77"
            },
            "data": {"key": "c2VjcmV0", "revision": "NA=="}
        }))
        .unwrap()
    }

    #[test]
    fn a_copy_says_what_the_home_secret_says_and_names_its_source_not_an_owner() {
        let source = Source {
            namespace: "orders".into(),
            rotation: "api".into(),
        };
        let copy = render(&home(), "billing", &source);
        assert_eq!(copy.metadata.namespace.as_deref(), Some("billing"));
        assert_eq!(copy.metadata.name.as_deref(), Some("api-key"));
        assert!(
            copy.metadata.owner_references.is_none(),
            "owner references cannot cross namespaces"
        );
        assert!(copy.metadata.resource_version.is_none());
        assert_eq!(source_of(&copy), Some(source));
        let ann = copy.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.get(k::REVISION).map(String::as_str), Some("4"));
        assert_eq!(ann.len(), 1, "only keyrotor's annotations travel");
        assert_eq!(digest(&copy), digest(&home()));
        assert_eq!(source_of(&home()), None, "the home Secret is no copy");
    }

    #[test]
    fn an_edited_file_changes_the_digest() {
        let mut edited = home();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("key".into(), ByteString(b"other".to_vec()));
        assert_ne!(digest(&edited), digest(&home()));
        let mut renamed = home();
        let data = renamed.data.as_mut().unwrap();
        let v = data.remove("key").unwrap();
        data.insert("ke".into(), ByteString([b"y".as_slice(), &v.0].concat()));
        assert_ne!(digest(&renamed), digest(&home()), "file boundaries count");
    }
}
