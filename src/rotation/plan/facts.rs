//! Derived facts: what the observed state and the writes planned so far
//! imply (staged and unstaged versions, leftovers, the stage, traffic, the
//! schedule, status records). Side-effect free.

use jiff::Timestamp;

use super::Planner;
use crate::rotation::model::*;

impl<'a> Planner<'a> {
    /// The user name version `v` carries: as its Secret records it, as
    /// status remembers it (its Secret lost), or as this plan creates it.
    pub(super) fn username_of(&self, v: Version) -> Option<&str> {
        match self.input.obs.versions.get(&v) {
            Some(seen) => seen.username.as_deref(),
            None => self
                .record(v)
                .and_then(|r| r.username.as_deref())
                .or_else(|| {
                    let created = self.versions.created.iter().find(|c| c.version == v);
                    created.and_then(|c| c.username.as_deref())
                }),
        }
    }

    /// Whether version `v`'s Secret still holds its key material.
    pub(super) fn has_key(&self, v: Version) -> bool {
        self.input.obs.versions.get(&v).is_some_and(|o| o.has_key)
    }

    /// The newest accepted version above `current` still on its way to presenters.
    pub(super) fn staged_successor(&self, current: Version) -> Option<Version> {
        self.projected
            .accepted
            .range(current + 1..)
            .rev()
            .copied()
            .find(|v| {
                !self.versions.abandoned.contains(v) && !self.input.policy.revoked.contains(v)
            })
    }

    /// A version Secret created but not yet accepted (a crash between the two writes).
    pub(super) fn unstaged_version(&self) -> Option<Version> {
        let projected_max = self
            .projected
            .accepted
            .iter()
            .copied()
            .chain(self.projected.current)
            .max()
            .unwrap_or(0);
        self.input
            .obs
            .versions
            .range(projected_max + 1..)
            .rev()
            .find(|(v, o)| {
                o.has_key
                    && !self.versions.abandoned.contains(v)
                    && !self.input.policy.revoked.contains(v)
            })
            .map(|(v, _)| *v)
    }

    /// Old version Secrets still holding key material after their retirement.
    pub(super) fn leftovers(&self, current: Version) -> Option<Vec<Version>> {
        let list: Vec<Version> = self
            .input
            .obs
            .versions
            .keys()
            .copied()
            .filter(|v| {
                !self.projected.accepted.contains(v)
                    && *v != current
                    && (*v < current || self.versions.abandoned.contains(v))
            })
            .collect();
        (!list.is_empty()).then_some(list)
    }

    /// Whether leftover key material survives this plan's deletions.
    pub(super) fn leftovers_after_plan(&self) -> bool {
        self.projected
            .current
            .and_then(|c| self.leftovers(c))
            .is_some_and(|l| l.iter().any(|v| !self.versions.deleted.contains(v)))
    }

    /// The stage the projected state implies (the stage is never stored).
    pub(super) fn derived_stage(&self) -> Stage {
        let Some(c) = self.projected.current else {
            return Stage::Initializing;
        };
        if self.staged_successor(c).is_some() {
            Stage::Staging
        } else if self.projected.accepted.iter().any(|v| *v != c) {
            Stage::Promoting
        } else {
            Stage::Stable
        }
    }

    /// When verifiers last saw `v` presented, as observed or remembered.
    pub(super) fn last_seen(&self, v: Version) -> Option<Timestamp> {
        let a = self.input.obs.traffic.get(&v).copied();
        let b = self.input.obs.record.traffic.get(&v).copied();
        a.max(b)
    }

    /// The latest time any verifier reported any version presented, as
    /// observed or remembered: how recently a usage reporter was alive.
    pub(super) fn freshest_usage(&self) -> Option<Timestamp> {
        let obs = &self.input.obs;
        obs.traffic
            .values()
            .chain(obs.record.traffic.values())
            .max()
            .copied()
    }

    /// Start of the latest cycle: creation of the newest kept version.
    pub(super) fn last_rotation(&self) -> Option<Timestamp> {
        let newest = self
            .projected
            .current
            .into_iter()
            .chain(self.projected.accepted.iter().copied())
            .max()?;
        if self.versions.created.iter().any(|c| c.version == newest) {
            return Some(self.input.now);
        }
        self.input
            .obs
            .versions
            .get(&newest)
            .map(|v| v.created_at)
            .or_else(|| self.record(newest).map(|r| r.created_at))
    }

    /// When the schedule asks for the next rotation.
    pub(super) fn next_rotation(&self) -> Option<Timestamp> {
        let schedule = self.input.policy.schedule.as_ref()?;
        schedule.next_after(self.last_rotation()?)
    }

    /// The status history entry of `v`.
    pub(super) fn record(&self, v: Version) -> Option<&VersionRecord> {
        self.input
            .obs
            .record
            .history
            .iter()
            .find(|r| r.version == v)
    }

    /// How `g` confirms.
    pub(super) fn group_policy(&self, g: Group) -> &'a GroupPolicy {
        match g {
            Group::Verifiers => &self.input.policy.verifiers,
            Group::Presenters => &self.input.policy.presenters,
        }
    }

    /// What was observed of `g`.
    pub(super) fn group_obs(&self, g: Group) -> &'a GroupObs {
        match g {
            Group::Verifiers => &self.input.obs.verifiers,
            Group::Presenters => &self.input.obs.presenters,
        }
    }
}
