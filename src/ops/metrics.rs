//! Prometheus metrics, one registry prefixed `keyrotor`. Labels are bounded:
//! a rotation's namespace/name, a group, a stage, an error category or an
//! outcome, never an error message or a key-derived value. Served in the
//! Prometheus text format 0.0.4 (see [`Metrics::encode`]); the alerts and the
//! dashboard in `charts/keyrotor/monitoring/` name these metrics.

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
use crate::conditions::types::MIGRATION_STALLED;
use crate::rotation::{Policy, Stage, VersionState};

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
    key_created: Family<RotationLabels, Gauge>,
    key_max_age: Family<RotationLabels, Gauge>,
    next_rotation: Family<RotationLabels, Gauge>,
    stalled: Family<RotationLabels, Gauge>,
    nudges_refused: Family<RotationLabels, Counter>,
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
            secret_reads: Family::default(),
            // 0.25 ms to 1.4 s in steps of √2: fine enough to tell 10 ms from 20 ms.
            duration: Histogram::new(exponential_buckets(0.00025, std::f64::consts::SQRT_2, 26)),
            rotations: Family::default(),
            key_created: Family::default(),
            key_max_age: Family::default(),
            next_rotation: Family::default(),
            stalled: Family::default(),
            nudges_refused: Family::default(),
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
        registry.register(
            "current_key_created_timestamp_seconds",
            "When the key presenters send was created (key age = now - this)",
            m.key_created.clone(),
        );
        registry.register(
            "current_key_max_age_seconds",
            "How old the current key may grow: from its creation to the first scheduled rotation after it, plus gracePeriod.maximum (absent without a schedule)",
            m.key_max_age.clone(),
        );
        registry.register(
            "next_rotation_timestamp_seconds",
            "When the schedule next asks for a rotation (absent without a schedule or while suspended)",
            m.next_rotation.clone(),
        );
        registry.register(
            "migration_stalled",
            "1 while the rotation's MigrationStalled condition is True (a group has not confirmed within gracePeriod.maximum)",
            m.stalled.clone(),
        );
        registry.register(
            "nudges_refused",
            "Nudges the API refused (RBAC lacks patch on pods): consumers then load changes at kubelet's pace",
            m.nudges_refused.clone(),
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
            "1 while this replica reconciles: it holds the leader lease, or runs without leader election",
            m.leader.clone(),
        );
        // Counters start at 0 for every label value they can take: a rate or
        // an increase then counts the first event too.
        for result in ["ok", "error"] {
            let _ = m.reconciles.get_or_create(&ResultLabels { result });
        }
        for category in crate::controller::ERROR_CATEGORIES {
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
        self.nudges_refused
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
            // The schedule allows a key to live until its first due time,
            // plus the longest a cycle may then wait for its consumers.
            let max_age = policy
                .schedule
                .as_ref()
                .and_then(|s| s.next_after(v.created_at))
                .map(|due| due.duration_since(v.created_at) + policy.grace_maximum);
            match max_age {
                Some(age) => {
                    self.key_max_age.get_or_create(&labels).set(age.as_secs());
                }
                None => {
                    self.key_max_age.remove(&labels);
                }
            }
        }
        let stalled = status
            .conditions
            .iter()
            .any(|c| c.type_ == MIGRATION_STALLED && c.status == "True");
        self.stalled.get_or_create(&labels).set(i64::from(stalled));
        // From 0, so the first refusal is an increase too.
        let _ = self.nudges_refused.get_or_create(&labels);
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
        self.key_max_age.remove(&labels);
        self.next_rotation.remove(&labels);
        self.stalled.remove(&labels);
        self.nudges_refused.remove(&labels);
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
    use crate::rotation::schedule::Schedule;
    use crate::rotation::{GroupPolicy, Mode, OnTimeout, Origin, VersionRecord};

    fn policy(schedule: Option<Schedule>) -> Policy {
        let group = GroupPolicy {
            mode: Mode::Report,
            nudge: true,
            propagation_delay: SignedDuration::from_secs(90),
            workloads: vec![],
        };
        Policy {
            schedule,
            grace_minimum: SignedDuration::from_secs(60),
            grace_maximum: SignedDuration::from_hours(2),
            on_timeout: OnTimeout::Wait,
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
        }
    }

    fn promoting(stalled: bool) -> ApiKeyRotationStatus {
        let created: Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
        ApiKeyRotationStatus {
            stage: Some(Stage::Promoting),
            current_version: Some(2),
            versions: vec![VersionRecord {
                version: 2,
                state: VersionState::Current,
                fingerprint: "sha256:00".into(),
                origin: Origin::Generated,
                created_at: created,
                promoted_at: Some(created),
                retired_at: None,
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
        let m = Metrics::new();
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
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.observe("shop", "orders", &promoting(false), &policy(None));
        let text = m.encode();
        assert!(text.contains("keyrotor_migration_stalled{namespace=\"shop\",name=\"orders\"} 0"));
        assert!(
            !text.contains("keyrotor_current_key_max_age_seconds{"),
            "no schedule, no max age:\n{text}"
        );
        m.forget("shop", "orders");
        assert!(!m.encode().contains("orders"));
    }

    #[test]
    fn counters_are_named_with_total_in_help_and_type() {
        let m = Metrics::new();
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
