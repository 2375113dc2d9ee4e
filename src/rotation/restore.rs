//! Hand edits, undone before planning: a version Secret deleted while a
//! projected Secret still holds its key is re-created from it (same key, same
//! fingerprint). The planner emits the write like any other, first in the
//! plan, and plans the rest as if the Secret were there: re-creating a
//! version Secret changes no projection, so every prefix still keeps I1.

use std::borrow::Cow;

use jiff::Timestamp;

use super::model::*;
use crate::conditions::events;

/// The versions to restore, and `obs` as it will be once they are.
pub(super) fn restore_lost(
    obs: &Observed,
    now: Timestamp,
) -> (Cow<'_, Observed>, Vec<Action>, Vec<Event>) {
    let wanted = |v: &Version| {
        obs.verifier
            .as_ref()
            .is_some_and(|p| p.accepted.contains(v))
            || obs.presenter.as_ref().and_then(|p| p.current) == Some(*v)
    };
    let mut restored = Vec::new();
    for (&v, fingerprint) in &obs.recoverable {
        if obs.versions.contains_key(&v) || !wanted(&v) {
            continue;
        }
        let record = obs.record.history.iter().find(|r| r.version == v);
        // A projection edited by hand must not smuggle a different key in.
        if record.is_some_and(|r| !r.fingerprint.is_empty() && &r.fingerprint != fingerprint) {
            continue;
        }
        let origin = record.map_or(Origin::Generated, |r| r.origin);
        let created_at = record.map_or(now, |r| r.created_at);
        // The name it was created with, as status recorded it.
        let username = record.and_then(|r| r.username.clone());
        restored.push((v, fingerprint.clone(), origin, created_at, username));
    }
    if restored.is_empty() {
        return (Cow::Borrowed(obs), Vec::new(), Vec::new());
    }
    let mut after = obs.clone();
    let (mut actions, mut notes) = (Vec::new(), Vec::new());
    for (version, fingerprint, origin, created_at, username) in restored {
        after.versions.insert(
            version,
            VersionObs {
                fingerprint,
                has_key: true,
                created_at,
                origin,
                requests: Requests::default(),
                abandoned: None,
                // The hook is asked again: the record went with the Secret.
                hook_accepted: false,
                username: username.clone(),
            },
        );
        actions.push(Action::RestoreVersion {
            version,
            origin,
            created_at,
            username,
        });
        notes.push(Event {
            kind: EventType::Warning,
            reason: events::KEY_RECOVERED,
            note: format!(
                "version {version}'s Secret was deleted; re-created from the projected Secret that still holds its key (same key, same fingerprint)"
            ),
        });
    }
    (Cow::Owned(after), actions, notes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn published(accepted: &[Version], current: Option<Version>) -> Published {
        Published {
            revision: 3,
            accepted: accepted.iter().copied().collect::<BTreeSet<_>>(),
            current,
            written_at: Timestamp::UNIX_EPOCH,
            highest: 2,
        }
    }

    fn lost_v2() -> Observed {
        let mut obs = Observed {
            verifier: Some(published(&[1, 2], None)),
            presenter: Some(published(&[], Some(1))),
            ..Default::default()
        };
        obs.recoverable.insert(2, "sha256:aa".into());
        obs
    }

    #[test]
    fn a_deleted_version_secret_whose_key_a_projection_holds_is_restored_first() {
        let obs = lost_v2();
        let (after, actions, events) = restore_lost(&obs, Timestamp::UNIX_EPOCH);
        assert!(matches!(
            actions[..],
            [Action::RestoreVersion { version: 2, .. }]
        ));
        assert_eq!(events[0].reason, events::KEY_RECOVERED);
        assert!(after.versions[&2].has_key);
        assert_eq!(after.versions[&2].fingerprint, "sha256:aa");
    }

    #[test]
    fn a_projected_key_that_differs_from_the_recorded_fingerprint_is_not_restored() {
        let mut obs = lost_v2();
        obs.record.history.push(VersionRecord {
            version: 2,
            state: VersionState::Staged,
            fingerprint: "sha256:bb".into(),
            origin: Origin::Generated,
            created_at: Timestamp::UNIX_EPOCH,
            promoted_at: None,
            retired_at: None,
            username: None,
        });
        let (_, actions, _) = restore_lost(&obs, Timestamp::UNIX_EPOCH);
        assert!(actions.is_empty());
    }

    #[test]
    fn a_restored_version_keeps_the_user_name_status_recorded() {
        let mut obs = lost_v2();
        obs.record.history.push(VersionRecord {
            version: 2,
            state: VersionState::Staged,
            fingerprint: "sha256:aa".into(),
            origin: Origin::Generated,
            created_at: Timestamp::UNIX_EPOCH,
            promoted_at: None,
            retired_at: None,
            username: Some("app_green".into()),
        });
        let (after, actions, _) = restore_lost(&obs, Timestamp::UNIX_EPOCH);
        assert!(matches!(
            &actions[..],
            [Action::RestoreVersion { version: 2, username: Some(u), .. }] if u == "app_green"
        ));
        assert_eq!(after.versions[&2].username.as_deref(), Some("app_green"));
    }

    #[test]
    fn a_version_no_projection_publishes_is_left_alone() {
        let mut obs = lost_v2();
        obs.verifier = Some(published(&[1], None));
        let (after, actions, _) = restore_lost(&obs, Timestamp::UNIX_EPOCH);
        assert!(actions.is_empty());
        assert!(matches!(after, Cow::Borrowed(_)));
    }
}
