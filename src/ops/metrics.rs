//! Prometheus metrics, one registry prefixed `keyrotor`. Labels are bounded:
//! a rotation's namespace/name, a group, a stage, an error category or an
//! outcome, never an error message or a key-derived value.

use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::ApiKeyRotationStatus;
use crate::rotation::{Stage, VersionState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RotationLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub namespace: String,
    pub name: String,
    pub group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub namespace: String,
    pub name: String,
    pub stage: &'static str,
}

const STAGES: [(Stage, &str); 5] = [
    (Stage::Initializing, "Initializing"),
    (Stage::Stable, "Stable"),
    (Stage::Staging, "Staging"),
    (Stage::Promoting, "Promoting"),
    (Stage::Retiring, "Retiring"),
];

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<CategoryLabels, Counter>,
    duration: Histogram,
    rotations: Family<OutcomeLabels, Counter>,
    key_created: Family<RotationLabels, Gauge>,
    next_rotation: Family<RotationLabels, Gauge>,
    waiting: Family<GroupLabels, Gauge>,
    stage: Family<StageLabels, Gauge>,
    leader: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyrotor");
        let m = Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            // 0.25 ms to 1.4 s in steps of √2: fine enough to tell 10 ms from 20 ms.
            duration: Histogram::new(exponential_buckets(0.00025, std::f64::consts::SQRT_2, 26)),
            rotations: Family::default(),
            key_created: Family::default(),
            next_rotation: Family::default(),
            waiting: Family::default(),
            stage: Family::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("reconciles", "Reconciles by result", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error category",
            m.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            m.duration.clone(),
        );
        registry.register(
            "rotations",
            "Finished rotation steps by outcome",
            m.rotations.clone(),
        );
        registry.register(
            "current_key_created_timestamp_seconds",
            "When the key presenters send was created (key age = now - this)",
            m.key_created.clone(),
        );
        registry.register(
            "next_rotation_timestamp_seconds",
            "When the schedule next asks for a rotation",
            m.next_rotation.clone(),
        );
        registry.register(
            "consumers_waiting",
            "Consumers that have not confirmed the latest change",
            m.waiting.clone(),
        );
        registry.register(
            "stage",
            "1 for the stage each rotation is in",
            m.stage.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            m.leader.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Starts timing a reconcile; the duration is recorded when the guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    pub fn reconcile_ok(&self) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
    }

    pub fn reconcile_failed(&self, category: &'static str) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "error" })
            .inc();
        self.errors
            .get_or_create(&CategoryLabels { category })
            .inc();
    }

    /// Counts a finished step from its event reason.
    pub fn event(&self, reason: &str) {
        let outcome = match reason {
            "VersionRetired" => "completed",
            "RetiredOnTimeout" => "retired_on_timeout",
            "VersionRevoked" => "revoked",
            "RolledBack" => "rolled_back",
            "VersionCreated" => "started",
            _ => return,
        };
        self.rotations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Per-rotation gauges from the status just computed.
    pub fn observe(&self, namespace: &str, name: &str, status: &ApiKeyRotationStatus) {
        let labels = RotationLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        let current = status.current_version;
        if let Some(v) = status
            .versions
            .iter()
            .find(|v| Some(v.version) == current && v.state == VersionState::Current)
        {
            self.key_created
                .get_or_create(&labels)
                .set(v.created_at.as_second());
        }
        match status.next_rotation_time {
            Some(t) => {
                self.next_rotation.get_or_create(&labels).set(t.as_second());
            }
            None => {
                self.next_rotation.remove(&labels);
            }
        }
        for (group, progress) in status
            .confirmation
            .iter()
            .flat_map(|c| [("verifiers", &c.verifiers), ("presenters", &c.presenters)])
        {
            let l = GroupLabels {
                namespace: namespace.into(),
                name: name.into(),
                group,
            };
            self.waiting
                .get_or_create(&l)
                .set(i64::from(progress.total.saturating_sub(progress.confirmed)));
        }
        if status.confirmation.is_none() {
            for group in ["verifiers", "presenters"] {
                self.waiting
                    .get_or_create(&GroupLabels {
                        namespace: namespace.into(),
                        name: name.into(),
                        group,
                    })
                    .set(0);
            }
        }
        for (stage, label) in STAGES {
            let l = StageLabels {
                namespace: namespace.into(),
                name: name.into(),
                stage: label,
            };
            self.stage
                .get_or_create(&l)
                .set(i64::from(status.stage == Some(stage)));
        }
    }

    /// Drops a deleted rotation's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = RotationLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.key_created.remove(&labels);
        self.next_rotation.remove(&labels);
        for group in ["verifiers", "presenters"] {
            self.waiting.remove(&GroupLabels {
                namespace: namespace.into(),
                name: name.into(),
                group,
            });
        }
        for (_, stage) in STAGES {
            self.stage.remove(&StageLabels {
                namespace: namespace.into(),
                name: name.into(),
                stage,
            });
        }
    }
}

/// Records a reconcile's duration when dropped, whatever path it left by.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_bounded_labels() {
        let m = Metrics::new();
        {
            let _t = m.reconcile_started();
            m.reconcile_ok();
        }
        m.reconcile_failed("conflict");
        m.event("VersionRetired");
        let status = ApiKeyRotationStatus {
            stage: Some(Stage::Promoting),
            ..Default::default()
        };
        m.observe("shop", "orders", &status);
        let text = m.encode();
        for line in [
            "keyrotor_reconciles_total{result=\"ok\"} 1",
            "keyrotor_reconcile_errors_total{category=\"conflict\"} 1",
            "keyrotor_rotations_total{outcome=\"completed\"} 1",
            "keyrotor_stage{namespace=\"shop\",name=\"orders\",stage=\"Promoting\"} 1",
            "keyrotor_stage{namespace=\"shop\",name=\"orders\",stage=\"Stable\"} 0",
            "keyrotor_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.forget("shop", "orders");
        assert!(!m.encode().contains("orders"));
    }
}
