//! Prometheus metrics, one registry prefixed `keyrotor`. Labels are bounded:
//! a rotation's namespace/name, a group, a stage, an error category or an
//! outcome, never an error message or a key-derived value. Served in the
//! Prometheus text format 0.0.4 (see [`Metrics::encode`]); the alerts
//! and the dashboard in `charts/keyrotor/monitoring/` name these metrics.
//! The process-wide counters live here, the per-rotation gauges in
//! `rotation`.

use std::time::Instant;

use keyrotor_sidecar::admin::exposition::{Exposition, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::ApiKeyRotationStatus;
use crate::conditions::events;
use crate::rotation::Policy;
use rotation::RotationGauges;

mod rotation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    pub read: &'static str,
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
pub struct ReasonLabels {
    pub namespace: String,
    pub name: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub namespace: String,
    pub name: String,
    pub stage: &'static str,
}

/// Event reasons that count as a rotation step, and the outcome label.
const OUTCOMES: [(&str, &str); 5] = [
    (events::VERSION_RETIRED, "completed"),
    (events::RETIRED_ON_TIMEOUT, "retired_on_timeout"),
    (events::VERSION_REVOKED, "revoked"),
    (events::ROLLED_BACK, "rolled_back"),
    (events::VERSION_CREATED, "started"),
];

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<CategoryLabels, Counter>,
    secret_reads: Family<ReadLabels, Counter>,
    duration: Histogram,
    rotations: Family<OutcomeLabels, Counter>,
    rotation: RotationGauges,
    leader: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Metrics {
    /// The registry, with every counter at 0 for each label value it can
    /// take; `error_categories` are the words failed reconciles are counted
    /// by (the controller's `ERROR_CATEGORIES`).
    pub fn new(error_categories: &[&'static str]) -> Metrics {
        let mut registry = Registry::with_prefix("keyrotor");
        let m = Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            secret_reads: Family::default(),
            // 0.25 ms to 1.4 s in steps of √2: fine enough to tell 10 ms from 20 ms.
            duration: Histogram::new(exponential_buckets(0.00025, std::f64::consts::SQRT_2, 26)),
            rotations: Family::default(),
            rotation: RotationGauges::default(),
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
            "secret_reads",
            "Reads of a rotation's Secrets by kind (cached: the API server's watch cache as it stood, accepted because it showed every write keyrotor made; consistent: after the cache caught up)",
            m.secret_reads.clone(),
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
        m.rotation.register(&mut registry);
        registry.register(
            "leader",
            "1 while this replica reconciles: it holds the leader lease, or runs without leader election",
            m.leader.clone(),
        );
        // Counters start at 0 for every label value they can take: a rate or
        // an increase then counts the first event too.
        for result in ["ok", "error"] {
            let _ = m.reconciles.get_or_create(&ResultLabels { result });
        }
        for category in error_categories {
            let _ = m.errors.get_or_create(&CategoryLabels { category });
        }
        for (_, outcome) in OUTCOMES {
            let _ = m.rotations.get_or_create(&OutcomeLabels { outcome });
        }
        Metrics { registry, ..m }
    }

    /// The Prometheus text format (0.0.4) for `/metrics`, which is what the
    /// admin server's Content-Type says and what `promtool check metrics`
    /// reads (see `keyrotor_sidecar::admin::exposition`).
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
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

    /// Counts one observe's read of a rotation's Secrets.
    pub fn secrets_read(&self, read: &'static str) {
        self.secret_reads.get_or_create(&ReadLabels { read }).inc();
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
        let Some(&(_, outcome)) = OUTCOMES.iter().find(|(r, _)| *r == reason) else {
            return;
        };
        self.rotations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn nudges_refused(&self, namespace: &str, name: &str, n: u64) {
        self.rotation
            .nudges_refused
            .get_or_create(&RotationLabels {
                namespace: namespace.into(),
                name: name.into(),
            })
            .inc_by(n);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Per-rotation gauges from the status just computed and the policy it
    /// was computed under.
    pub fn observe(
        &self,
        namespace: &str,
        name: &str,
        status: &ApiKeyRotationStatus,
        policy: &Policy,
    ) {
        self.rotation.observe(namespace, name, status, policy);
    }

    /// The per-rotation gauges a status alone tells (ready, stalled), for a
    /// rotation whose plan could not run: an invalid spec, a Secret clash,
    /// a failing hook.
    pub fn observe_conditions(&self, namespace: &str, name: &str, status: &ApiKeyRotationStatus) {
        let series = rotation::Series::of(namespace, name);
        self.rotation.conditions(&series, status);
    }

    /// Drops a deleted rotation's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.rotation.forget(namespace, name);
    }
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
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
    use std::collections::BTreeSet;

    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::api::Condition;
    use crate::conditions::types::MIGRATION_STALLED;
    use crate::rotation::schedule::Schedule;
    use crate::rotation::{
        GroupPolicy, Mode, OnTimeout, Origin, Stage, VersionRecord, VersionState,
    };

    fn policy(schedule: Option<Schedule>) -> Policy {
        let group = GroupPolicy {
            mode: Mode::Report,
            nudge: true,
            propagation_delay: SignedDuration::from_secs(90),
            workloads: vec![],
            min_consumers: 1,
        };
        Policy {
            schedule,
            grace_minimum: SignedDuration::from_secs(60),
            grace_maximum: SignedDuration::from_hours(2),
            on_timeout: OnTimeout::Wait,
            progress_deadline: SignedDuration::from_mins(10),
            verifiers: group.clone(),
            presenters: group,
            quiet_window: None,
            combined: false,
            history_limit: 10,
            suspend: false,
            revoked: BTreeSet::new(),
            adopt: false,
            verifier_hook: false,
            issuer_hook: false,
            usernames: vec![],
        }
    }

    fn promoting(stalled: bool) -> ApiKeyRotationStatus {
        let created: Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
        ApiKeyRotationStatus {
            stage: Some(Stage::Promoting),
            stage_transition_time: Some(created),
            current_version: Some(2),
            versions: vec![VersionRecord {
                version: 2,
                state: VersionState::Current,
                fingerprint: "sha256:00".into(),
                origin: Origin::Generated,
                created_at: created,
                promoted_at: Some(created),
                retired_at: None,
                username: None,
            }],
            conditions: vec![Condition {
                type_: MIGRATION_STALLED.into(),
                status: if stalled { "True" } else { "False" }.into(),
                reason: "PresentersStalled".into(),
                message: String::new(),
                last_transition_time: created,
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn metrics_are_exposed_with_bounded_labels() {
        let m = Metrics::new(&["conflict", "server"]);
        {
            let _t = m.reconcile_started();
            m.reconcile_ok();
        }
        m.reconcile_failed("conflict");
        m.event("VersionRetired");
        let weekly = Schedule::Interval(SignedDuration::from_hours(24 * 7));
        m.observe("shop", "orders", &promoting(true), &policy(Some(weekly)));
        let text = m.encode();
        for line in [
            "keyrotor_reconciles_total{result=\"ok\"} 1",
            "keyrotor_reconcile_errors_total{category=\"conflict\"} 1",
            "keyrotor_rotations_total{outcome=\"completed\"} 1",
            "keyrotor_stage{namespace=\"shop\",name=\"orders\",stage=\"Promoting\"} 1",
            "keyrotor_stage{namespace=\"shop\",name=\"orders\",stage=\"Stable\"} 0",
            "keyrotor_reconcile_duration_seconds_count 1",
            "keyrotor_migration_stalled{namespace=\"shop\",name=\"orders\"} 1",
            "keyrotor_nudges_refused_total{namespace=\"shop\",name=\"orders\"} 0",
            // A week from creation to the next due time, plus 2 h of grace.
            "keyrotor_current_key_max_age_seconds{namespace=\"shop\",name=\"orders\"} 612000",
            "keyrotor_stalled{namespace=\"shop\",name=\"orders\",reason=\"PresentersStalled\"} 1",
            "keyrotor_stalled{namespace=\"shop\",name=\"orders\",reason=\"NoConsumers\"} 0",
            "keyrotor_ready{namespace=\"shop\",name=\"orders\"} 0",
            "keyrotor_stage_started_timestamp_seconds{namespace=\"shop\",name=\"orders\"} 1767607200",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.observe("shop", "orders", &promoting(false), &policy(None));
        let text = m.encode();
        assert!(text.contains("keyrotor_migration_stalled{namespace=\"shop\",name=\"orders\"} 0"));
        assert!(
            text.contains("keyrotor_stalled{namespace=\"shop\",name=\"orders\",reason=\"PresentersStalled\"} 0"),
            "a stall that ended says so by reason too:\n{text}"
        );
        assert!(
            !text.contains("keyrotor_current_key_max_age_seconds{"),
            "no schedule, no max age:\n{text}"
        );
        m.forget("shop", "orders");
        assert!(!m.encode().contains("orders"));
    }

    #[test]
    fn counters_are_named_with_total_in_help_and_type() {
        let m = Metrics::new(&["conflict", "server"]);
        m.reconcile_ok();
        m.observe("shop", "orders", &promoting(false), &policy(None));
        let text = m.encode();
        for line in [
            "# HELP keyrotor_reconciles_total Reconciles by result.",
            "# TYPE keyrotor_reconciles_total counter",
            "# TYPE keyrotor_rotations_total counter",
            "keyrotor_reconcile_errors_total{category=\"server\"} 0",
            "# TYPE keyrotor_stage gauge",
            "# TYPE keyrotor_reconcile_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        // Every family has help, and every sample belongs to a family that
        // was declared under its own name (or is a histogram's series).
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        for family in &declared {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family} has no help"
            );
        }
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| declared.contains(b))
                .unwrap_or(name);
            assert!(declared.contains(&base), "{name} is in no declared family");
        }
    }
}
