//! When each version was last presented to this verifier, and its coarse
//! report on the pod: `<rotation>.keyrotor.dev/last-seen:
//! "<version>=<RFC 3339>,…"`, read by the operator's Traffic mode.
//!
//! Recording is in memory and cheap (one lock per verified request). The
//! report is bounded: at most one API write per interval, and only when some
//! version's last-seen moved by at least the interval since it was last
//! reported (or a version was seen for the first time). A quiet window is
//! many intervals long, so this coarseness costs the operator nothing while a
//! busy verifier costs the API server one write a minute at most.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use jiff::{Timestamp, Unit};

use crate::pod::PodAnnotator;
use crate::wire::{LastSeen, Version, last_seen};

/// Default interval between usage reports.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Last time each version was presented, in this process.
#[derive(Debug, Default)]
pub struct Usage {
    seen: Mutex<BTreeMap<Version, Timestamp>>,
}

impl Usage {
    /// Notes that `version` was presented at `at`.
    pub fn record(&self, version: Version, at: Timestamp) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let e = seen.entry(version).or_insert(at);
        *e = (*e).max(at);
    }

    /// Every version's last-seen time.
    pub fn last_seen(&self) -> BTreeMap<Version, Timestamp> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets versions that are no longer accepted: their traffic can no
    /// longer succeed, and the operator has retired them.
    pub fn retain(&self, accepted: &BTreeSet<Version>) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v, _| accepted.contains(v));
    }
}

/// The annotation value, [`LastSeen`] rounded to the second: the report is
/// coarse by design, and whole seconds keep it short.
pub fn format(seen: &BTreeMap<Version, Timestamp>) -> String {
    let rounded = seen
        .iter()
        .map(|(v, t)| (*v, t.round(Unit::Second).unwrap_or(*t)))
        .collect();
    LastSeen(rounded).format()
}

/// Writes a rotation's `last-seen` annotation, rate-bounded.
pub struct UsageReporter {
    pod: PodAnnotator,
    key: String,
    interval: Duration,
    reported: BTreeMap<Version, Timestamp>,
    last_attempt: Option<Timestamp>,
}

impl UsageReporter {
    /// `pod` should use the [`crate::wire::USAGE_MANAGER`] field manager.
    pub fn new(pod: PodAnnotator, rotation: &str, interval: Duration) -> UsageReporter {
        UsageReporter {
            pod,
            key: last_seen(rotation),
            interval,
            reported: BTreeMap::new(),
            last_attempt: None,
        }
    }

    fn moved(&self, seen: &BTreeMap<Version, Timestamp>) -> bool {
        let interval = self.interval.as_secs_f64();
        seen.iter().any(|(v, t)| match self.reported.get(v) {
            None => true,
            Some(r) => t.duration_since(*r).as_secs_f64() >= interval,
        }) || self.reported.keys().any(|v| !seen.contains_key(v))
    }

    /// Whether a report is due at `now` for these last-seen times.
    pub fn due(&self, seen: &BTreeMap<Version, Timestamp>, now: Timestamp) -> bool {
        let rested = self.last_attempt.is_none_or(|last| {
            now.duration_since(last).as_secs_f64() >= self.interval.as_secs_f64()
        });
        rested && !seen.is_empty() && self.moved(seen)
    }

    /// Reports `usage` if due; returns whether it wrote. A failed write still
    /// counts against the rate bound: the next try waits an interval.
    pub async fn flush(&mut self, usage: &Usage, now: Timestamp) -> Result<bool, kube::Error> {
        let seen = usage.last_seen();
        if !self.due(&seen, now) {
            return Ok(false);
        }
        self.last_attempt = Some(now);
        let value = format(&seen);
        self.pod
            .set(&BTreeMap::from([(self.key.clone(), value)]))
            .await?;
        self.reported = seen;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_version_equals_rfc3339_to_the_second() {
        let t: Timestamp = "2026-03-01T10:14:03.6Z".parse().unwrap();
        let u: Timestamp = "2026-03-01T10:15:00Z".parse().unwrap();
        assert_eq!(
            format(&BTreeMap::from([(1, t), (2, u)])),
            "1=2026-03-01T10:14:04Z,2=2026-03-01T10:15:00Z"
        );
    }

    #[test]
    fn usage_keeps_the_latest_time_and_forgets_retired_versions() {
        let usage = Usage::default();
        let t: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        usage.record(1, t);
        usage.record(1, t - jiff::SignedDuration::from_secs(5));
        usage.record(2, t);
        assert_eq!(usage.last_seen()[&1], t);
        usage.retain(&BTreeSet::from([2]));
        assert_eq!(usage.last_seen().keys().copied().collect::<Vec<_>>(), [2]);
    }
}
