//! Annotations on the process's own Pod: the only object a consumer writes.
//!
//! Writes are JSON merge patches of `metadata.annotations` alone, so they
//! touch nothing else and pass the reporter admission policy
//! (charts/keyrotor/templates/reporter-policy.yaml). The pod's identity comes from the Downward
//! API (`POD_NAME`, `POD_NAMESPACE`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Which pod this process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
}

impl PodRef {
    /// From the Downward API environment (`POD_NAME`, `POD_NAMESPACE`).
    pub fn from_env() -> Result<PodRef, MissingEnv> {
        let var = |name: &'static str, field: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(MissingEnv { name, field })
        };
        Ok(PodRef {
            name: var("POD_NAME", "name")?,
            namespace: var("POD_NAMESPACE", "namespace")?,
        })
    }
}

/// A Downward API variable the process needs is unset or empty.
#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: add it from the Downward API (fieldRef metadata.{field})")]
pub struct MissingEnv {
    /// The environment variable (`POD_NAME`, `POD_NAMESPACE`).
    pub name: &'static str,
    /// The pod's field it comes from (`name`, `namespace`).
    pub field: &'static str,
}

/// Writes annotations on one pod under one field manager.
#[derive(Clone)]
pub struct PodAnnotator {
    api: Api<Pod>,
    pod: PodRef,
    manager: &'static str,
}

impl PodAnnotator {
    pub fn new(client: kube::Client, pod: PodRef, manager: &'static str) -> PodAnnotator {
        PodAnnotator {
            api: Api::namespaced(client, &pod.namespace),
            pod,
            manager,
        }
    }

    /// The pod written to.
    pub fn pod(&self) -> &PodRef {
        &self.pod
    }

    /// The pod's current annotations.
    pub async fn annotations(&self) -> Result<BTreeMap<String, String>, kube::Error> {
        let meta = self.api.get_metadata(&self.pod.name).await?;
        Ok(meta.metadata.annotations.unwrap_or_default())
    }

    /// Writes those of `want` that differ on the pod; returns how many. Reading
    /// first makes a steady state cost no write (I8) and repairs an annotation
    /// someone removed.
    pub async fn ensure(&self, want: &BTreeMap<String, String>) -> Result<usize, kube::Error> {
        let have = self.annotations().await?;
        let diff: BTreeMap<&String, &String> = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(*v))
            .collect();
        if diff.is_empty() {
            return Ok(0);
        }
        self.set(&diff).await?;
        Ok(diff.len())
    }

    /// Writes `values` without reading first (the caller knows they changed).
    pub async fn set<K, V>(&self, values: &BTreeMap<K, V>) -> Result<(), kube::Error>
    where
        K: serde::Serialize,
        V: serde::Serialize,
    {
        let patch = json!({"metadata": {"annotations": values}});
        let params = PatchParams {
            field_manager: Some(self.manager.to_string()),
            ..Default::default()
        };
        self.api
            .patch_metadata(&self.pod.name, &params, &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_says_which_downward_api_field_sets_it() {
        let e = MissingEnv {
            name: "POD_NAMESPACE",
            field: "namespace",
        };
        assert_eq!(
            e.to_string(),
            "POD_NAMESPACE is not set: add it from the Downward API (fieldRef metadata.namespace)"
        );
    }
}
