//! The verifier endpoint's metrics, prefixed `keyrotor_verifier`. Labels are
//! bounded: the rotation, a version number, a fixed reason. Never a key,
//! a digest or a client address (addresses are unbounded; they go to the
//! pod's traffic annotation, one at a time).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use keyrotor_consumer::wire::Version;

use crate::admin::exposition::{Exposition, encode_registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    namespace: String,
    name: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    namespace: String,
    name: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    namespace: String,
    name: String,
}

/// Why a check was refused, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A key no version of this rotation ever had (as far as this process knows).
    UnknownKey,
    /// A version this process accepted once and no longer does.
    RetiredVersion,
    /// No key, a repeated or non-text header, another scheme, too long.
    Malformed,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::UnknownKey => "unknown_key",
            Rejection::RetiredVersion => "retired_version",
            Rejection::Malformed => "malformed",
        }
    }
}

pub struct VerifierMetrics {
    registry: Registry,
    rotation: RotationLabels,
    accepted: Family<VersionLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    retired: Family<VersionLabels, Counter>,
    revision: Family<RotationLabels, Gauge>,
    duration: Histogram,
}

impl VerifierMetrics {
    pub fn new(namespace: &str, name: &str) -> VerifierMetrics {
        let mut registry = Registry::with_prefix("keyrotor_verifier");
        let m = VerifierMetrics {
            rotation: RotationLabels {
                namespace: namespace.into(),
                name: name.into(),
            },
            accepted: Family::default(),
            rejected: Family::default(),
            retired: Family::default(),
            revision: Family::default(),
            // 5 µs to ~10 ms in steps of √2.
            duration: Histogram::new(exponential_buckets(5e-6, std::f64::consts::SQRT_2, 22)),
            registry: Registry::default(),
        };
        registry.register(
            "accepted",
            "Checks that presented an accepted version, by version",
            m.accepted.clone(),
        );
        registry.register(
            "rejected",
            "Checks refused, by reason (unknown_key, retired_version, malformed)",
            m.rejected.clone(),
        );
        registry.register(
            "retired_presented",
            "Checks that presented a retired version, by version: a client missed the rotation",
            m.retired.clone(),
        );
        registry.register(
            "loaded_revision",
            "Revision of the verifier Secret this process checks against",
            m.revision.clone(),
        );
        registry.register(
            "check_duration_seconds",
            "Time to answer one check, from its headers to the decision",
            m.duration.clone(),
        );
        VerifierMetrics { registry, ..m }
    }

    fn version(&self, v: Version) -> VersionLabels {
        VersionLabels {
            namespace: self.rotation.namespace.clone(),
            name: self.rotation.name.clone(),
            version: v.to_string(),
        }
    }

    pub fn accepted(&self, v: Version) {
        self.accepted.get_or_create(&self.version(v)).inc();
    }

    pub fn rejected(&self, why: Rejection, retired: Option<Version>) {
        let labels = ReasonLabels {
            namespace: self.rotation.namespace.clone(),
            name: self.rotation.name.clone(),
            reason: why.label(),
        };
        self.rejected.get_or_create(&labels).inc();
        if let Some(v) = retired {
            self.retired.get_or_create(&self.version(v)).inc();
        }
    }

    /// Starts the retired-presentation series of `v` at 0, so the first
    /// presentation after its retirement is an increase (alerts use
    /// `increase()`).
    pub fn retired_known(&self, v: Version) {
        let _ = self.retired.get_or_create(&self.version(v));
    }

    pub fn loaded(&self, revision: u64) {
        self.revision
            .get_or_create(&self.rotation)
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    pub fn took(&self, seconds: f64) {
        self.duration.observe(seconds);
    }
}

impl Exposition for VerifierMetrics {
    /// Prometheus text 0.0.4, like the operator's (`promtool check metrics`).
    fn encode(&self) -> String {
        encode_registry(&self.registry)
    }
}
