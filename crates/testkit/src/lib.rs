//! An in-memory Kubernetes API for controller tests, fault injection and the demo.
//!
//! [`FakeApi`] serves the Kubernetes REST API from memory, in process as a tower service
//! for `kube::Client` or over plain HTTP on 127.0.0.1 for real binaries and kubectl. It
//! mirrors the apiserver rules an operator's correctness depends on (resourceVersion
//! conflicts, no-op writes, status subresource, server-side apply ownership, finalizers,
//! garbage collection, watch replay and 410 Gone) and lets a test break it on purpose
//! ([`Faults`]). What it deliberately does not do is listed in `docs/testkit.md`.
//!
//! It depends on kube-rs and k8s-openapi only, not on keyrotor: any kube-rs
//! controller can test against it (see the crate's README.md).
//!
//! ```no_run
//! # async fn demo() {
//! use keyrotor_testkit::FakeApi;
//! let api = FakeApi::new();
//! let client = api.client();
//! # let _ = client;
//! # }
//! ```
#![forbid(unsafe_code)]

mod apply;
mod body;
mod discovery;
mod error;
mod faults;
mod http;
mod meta_view;
mod patch;
mod resources;
mod route;
mod selector;
mod service;
mod store;
mod watch;

pub use body::ResponseBody;
pub use error::ApiError;
pub use faults::{Fault, Faults, WriteRecord};
pub use http::{HttpServer, RequestCounts};
pub use patch::PatchKind;
pub use resources::ResourceType;
pub use selector::{FieldSelector, LabelSelector};
pub use service::FakeService;
pub use store::{Store, WriteOpts};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::sync::Arc;
use std::time::Duration;

/// Default number of events kept for watch replay before older versions answer 410 Gone.
pub const DEFAULT_HISTORY: usize = 10_000;

/// One in-memory cluster API. Clone-free: share it by reference or `Arc`.
pub struct FakeApi {
    inner: Arc<service::Inner>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApi {
    /// A fresh API with the built-in types and the default namespaces.
    pub fn new() -> Self {
        Self::with_options(DEFAULT_HISTORY, Duration::from_secs(1))
    }

    /// A fresh API keeping `history` events for watch replay and sending watch bookmarks
    /// every `bookmark_interval`.
    pub fn with_options(history: usize, bookmark_interval: Duration) -> Self {
        Self {
            inner: Arc::new(service::Inner {
                store: Arc::new(Store::new(history.max(1))),
                faults: Arc::new(Faults::default()),
                bookmark_interval,
            }),
        }
    }

    /// The tower service (for `kube::Client::new` or custom stacks).
    pub fn service(&self) -> FakeService {
        FakeService {
            inner: self.inner.clone(),
        }
    }

    /// A `kube::Client` talking to this API in process; default namespace `default`.
    /// Must be called inside a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// Serves the API on 127.0.0.1 (ephemeral port) over plain HTTP.
    pub async fn listen(&self) -> std::io::Result<HttpServer> {
        HttpServer::start(self.service()).await
    }

    /// Registers a resource type (e.g. a custom resource).
    pub fn register(&self, ty: ResourceType) {
        self.inner.store.register(ty);
    }

    /// Registers every served version of a CRD (as `kubectl apply` of the CRD would).
    pub fn register_crd(&self, crd: &CustomResourceDefinition) {
        for ty in ResourceType::from_crd(crd) {
            self.register(ty);
        }
    }

    /// Fault-injection controls.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The object store (inspection, compaction, namespaces).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}
