//! The resource types the fake serves: built-ins plus custom resources registered at runtime.
//!
//! A resource type is described by data (group, version, plural, kind, scope, status
//! subresource) rather than Rust types, so the testkit stays independent of the operator's
//! own CRDs: a test registers them from a `CustomResourceDefinition` or by hand.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// One served resource (a group/version/plural triple).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Lower-case plural used in URLs, e.g. `secrets`.
    pub plural: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the type has a `/status` subresource (spec and status written separately).
    pub status: bool,
    /// Whether `metadata.generation` is tracked: 1 on create, +1 on every change outside
    /// `metadata` (and outside `status` when there is a status subresource), +1 when
    /// deletion starts. True for custom resources and for built-ins with a status.
    pub generation: bool,
    /// kubectl short names (discovery only).
    pub short_names: Vec<String>,
    /// kubectl categories (discovery only).
    pub categories: Vec<String>,
}

impl ResourceType {
    /// A namespaced type without status subresource; adjust with the builder methods.
    pub fn new(group: &str, version: &str, plural: &str, kind: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status: false,
            generation: false,
            short_names: vec![],
            categories: vec![],
        }
    }

    /// Makes the type cluster-scoped.
    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    /// Gives the type a `/status` subresource.
    pub fn with_status(mut self) -> Self {
        self.status = true;
        self.generation = true;
        self
    }

    /// Tracks `metadata.generation` (as every custom resource does).
    pub fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    /// Adds kubectl short names.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Every version of a CRD that is served, as resource types.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let spec = &crd.spec;
        spec.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| Self {
                group: spec.group.clone(),
                version: v.name.clone(),
                plural: spec.names.plural.clone(),
                kind: spec.names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                status: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
                generation: true,
                short_names: spec.names.short_names.clone().unwrap_or_default(),
                categories: spec.names.categories.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The key objects are stored under: objects of one group/plural are shared by all its
    /// versions (the fake does no conversion between versions).
    pub(crate) fn store_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }
}

/// The built-in types every fake serves.
pub fn builtins() -> Vec<ResourceType> {
    let t = ResourceType::new;
    vec![
        t("", "v1", "namespaces", "Namespace")
            .cluster_scoped()
            .with_status()
            .with_short_names(&["ns"]),
        t("", "v1", "secrets", "Secret"),
        t("", "v1", "configmaps", "ConfigMap").with_short_names(&["cm"]),
        t("", "v1", "pods", "Pod")
            .with_status()
            .with_short_names(&["po"]),
        t("", "v1", "events", "Event").with_short_names(&["ev"]),
        t("", "v1", "serviceaccounts", "ServiceAccount").with_short_names(&["sa"]),
        t("events.k8s.io", "v1", "events", "Event").with_short_names(&["ev"]),
        t("coordination.k8s.io", "v1", "leases", "Lease"),
        t("apps", "v1", "deployments", "Deployment")
            .with_status()
            .with_short_names(&["deploy"]),
        t("apps", "v1", "statefulsets", "StatefulSet")
            .with_status()
            .with_short_names(&["sts"]),
        t("apps", "v1", "daemonsets", "DaemonSet")
            .with_status()
            .with_short_names(&["ds"]),
        t("apps", "v1", "replicasets", "ReplicaSet")
            .with_status()
            .with_short_names(&["rs"]),
        t(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
        .cluster_scoped()
        .with_status()
        .with_short_names(&["crd", "crds"]),
    ]
}
