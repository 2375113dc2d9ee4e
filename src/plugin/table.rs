//! What `kubectl keyrotor` prints: pure functions from ApiKeyRotations to text,
//! so every column is unit-tested without a cluster. Status holds fingerprints
//! only (I4), and these functions read nothing else.

use jiff::{SignedDuration, Timestamp};

use crate::api::{ApiKeyRotation, ApiKeyRotationStatus};
use crate::conditions::types::READY;
use crate::rotation::{GroupProgress, VersionRecord};

/// Shown where a value is not known yet (no status, no schedule).
const NONE: &str = "-";

/// Aligns `rows` under `headers` the way kubectl does: columns separated by
/// three spaces, left-aligned, no trailing spaces, one line per row.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("   ");
            }
            out.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        // The last column is padded too; trim so lines diff cleanly.
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut text = line(&mut headers.iter().copied());
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// Columns of `status`; NAMESPACE only when listing across namespaces.
pub fn status_headers(all_namespaces: bool) -> Vec<&'static str> {
    let mut h = vec![
        "NAME",
        "CURRENT",
        "ACCEPTED",
        "STAGE",
        "VERIFIERS",
        "PRESENTERS",
        "READY",
        "NEXT ROTATION",
    ];
    if all_namespaces {
        h.insert(0, "NAMESPACE");
    }
    h
}

/// One `status` row for `rot`, with the next rotation relative to `now`.
pub fn status_row(rot: &ApiKeyRotation, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let empty = ApiKeyRotationStatus::default();
    let status = rot.status.as_ref().unwrap_or(&empty);
    let mut row = Vec::with_capacity(9);
    if all_namespaces {
        row.push(rot.metadata.namespace.clone().unwrap_or_default());
    }
    row.push(rot.metadata.name.clone().unwrap_or_default());
    row.push(current(status));
    row.push(if status.accepted_versions.is_empty() {
        NONE.into()
    } else {
        let accepted: Vec<String> = status
            .accepted_versions
            .iter()
            .map(u64::to_string)
            .collect();
        accepted.join(",")
    });
    row.push(status.stage.map_or(NONE.into(), |s| format!("{s:?}")));
    // Confirmation is only kept while a cycle is in flight (Stable has nothing to confirm).
    let confirmation = status.confirmation.as_ref();
    row.push(confirmation.map_or(NONE.into(), |c| progress(&c.verifiers)));
    row.push(confirmation.map_or(NONE.into(), |c| progress(&c.presenters)));
    row.push(ready(status));
    row.push(
        status
            .next_rotation_time
            .map_or(NONE.into(), |t| relative(t.duration_since(now))),
    );
    row
}

/// The current version, with its user name when it carries one (not
/// secret): `3 (app_green)`.
fn current(status: &ApiKeyRotationStatus) -> String {
    let Some(v) = status.current_version else {
        return NONE.into();
    };
    let record = status.versions.iter().find(|r| r.version == v);
    match record.and_then(|r| r.username.as_deref()) {
        Some(user) => format!("{v} ({user})"),
        None => v.to_string(),
    }
}

/// `confirmed/total` for one consumer group.
fn progress(g: &GroupProgress) -> String {
    format!("{}/{}", g.confirmed, g.total)
}

/// The Ready condition as `True (Reason)`.
fn ready(status: &ApiKeyRotationStatus) -> String {
    status
        .condition(READY)
        .map_or(NONE.into(), |c| format!("{} ({})", c.status, c.reason))
}

/// A time difference the way people read a schedule: `in 6d 23h`, `5m ago`.
/// Two units at most (the second dropped when zero); rounded down, so a
/// rotation due in 6d 23h 59m never reads as 7d before it is.
pub fn relative(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let abs = secs.unsigned_abs();
    if abs == 0 {
        return "now".into();
    }
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let i = UNITS.iter().position(|(n, _)| abs >= *n).unwrap_or(3);
    let (big, big_name) = UNITS[i];
    let mut text = format!("{}{big_name}", abs / big);
    if let Some((small, small_name)) = UNITS.get(i + 1) {
        let rest = (abs % big) / small;
        if rest > 0 {
            text.push_str(&format!(" {rest}{small_name}"));
        }
    }
    if secs > 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Lines under a single rotation's table: who a cycle in flight still waits
/// for, and why it is not Ready. Empty when there is nothing to say.
pub fn status_details(status: &ApiKeyRotationStatus) -> String {
    let mut out = String::new();
    if !status.namespaces.is_empty() {
        let each: Vec<String> = status
            .namespaces
            .iter()
            .map(|n| {
                format!(
                    "{} ({} verifiers, {} presenters)",
                    n.namespace, n.verifiers, n.presenters
                )
            })
            .collect();
        out.push_str(&format!("Consumers by namespace: {}\n", each.join(", ")));
    }
    if let Some(c) = &status.confirmation {
        for (role, g) in [("verifiers", &c.verifiers), ("presenters", &c.presenters)] {
            if g.waiting_for.is_empty() {
                continue;
            }
            // waiting_for holds "a few" names; say when there are more.
            let shown = g.waiting_for.len() as u32;
            let pending = g.total.saturating_sub(g.confirmed);
            let more = if pending > shown {
                format!(" and {} more", pending - shown)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "Waiting for {role} ({:?}, revision {}): {}{more}\n",
                g.mode,
                g.revision,
                g.waiting_for.join(", ")
            ));
        }
    }
    for c in &status.conditions {
        let bad = (c.type_ == READY && c.status != "True")
            || (c.type_ == crate::conditions::types::MIGRATION_STALLED && c.status == "True");
        if bad && !c.message.is_empty() {
            out.push_str(&format!("{} {}: {}\n", c.type_, c.status, c.message));
        }
    }
    out
}

/// What `keyrotor verifier` endpoints checked, summed over `endpoints` pods
/// (empty when none reported).
pub fn traffic_details(endpoints: usize, t: &keyrotor_consumer::wire::Traffic) -> String {
    if endpoints == 0 {
        return String::new();
    }
    let counts = |m: &std::collections::BTreeMap<u64, u64>| {
        m.iter()
            .map(|(v, n)| format!("v{v} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "Traffic at {endpoints} verifier endpoint(s): accepted {}\n",
        if t.accepted.is_empty() {
            "none".to_string()
        } else {
            counts(&t.accepted)
        }
    );
    if !t.retired.is_empty() {
        let client = t
            .client
            .map(|c| format!(", last from {c}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "Retired versions still presented (a client missed a rotation): {}{client}\n",
            counts(&t.retired)
        ));
    }
    out
}

/// Columns of `history`; USER only when a version carries a user name.
pub fn history_headers(versions: &[VersionRecord]) -> Vec<&'static str> {
    let mut h = vec![
        "VERSION",
        "STATE",
        "FINGERPRINT",
        "CREATED",
        "PROMOTED",
        "RETIRED",
    ];
    if with_users(versions) {
        h.insert(2, "USER");
    }
    h
}

fn with_users(versions: &[VersionRecord]) -> bool {
    versions.iter().any(|v| v.username.is_some())
}

/// One `history` row per version, oldest first.
pub fn history_rows(versions: &[VersionRecord]) -> Vec<Vec<String>> {
    let users = with_users(versions);
    let mut sorted: Vec<&VersionRecord> = versions.iter().collect();
    sorted.sort_by_key(|v| v.version);
    sorted
        .into_iter()
        .map(|v| {
            let mut row = vec![
                v.version.to_string(),
                format!("{:?}", v.state),
                v.fingerprint.clone(),
                time(Some(v.created_at)),
                time(v.promoted_at),
                time(v.retired_at),
            ];
            if users {
                row.insert(2, v.username.clone().unwrap_or_else(|| NONE.into()));
            }
            row
        })
        .collect()
}

/// RFC 3339 to the second (status carries more precision than anyone reads).
fn time(t: Option<Timestamp>) -> String {
    t.map_or(NONE.into(), |t| {
        t.round(jiff::Unit::Second)
            .map_or_else(|_| t.to_string(), |t| t.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn columns_align_to_the_widest_cell_with_three_spaces_between() {
        let text = render(
            &["NAME", "CURRENT", "READY"],
            &rows(&[
                &["orders", "3", "True"],
                &["a", "12", "False (InvalidSpec)"],
            ]),
        );
        assert_eq!(
            text,
            "NAME     CURRENT   READY\n\
             orders   3         True\n\
             a        12        False (InvalidSpec)\n"
        );
    }

    #[test]
    fn lines_carry_no_trailing_spaces_even_when_the_last_cell_is_short() {
        let text = render(&["A", "LONG HEADER"], &rows(&[&["x", "y"]]));
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
    }

    #[test]
    fn a_table_without_rows_is_just_the_header() {
        assert_eq!(render(&["NAME", "STAGE"], &[]), "NAME   STAGE\n");
    }

    #[test]
    fn wide_characters_count_once_per_character() {
        let text = render(&["N", "X"], &rows(&[&["é", "1"]]));
        assert_eq!(text, "N   X\né   1\n");
    }

    #[test]
    fn relative_times_show_two_units_rounded_down() {
        let s = |secs: i64| relative(SignedDuration::from_secs(secs));
        assert_eq!(s(7 * 86_400 - 5), "in 6d 23h");
        assert_eq!(s(86_400), "in 1d");
        assert_eq!(s(3_600 + 120), "in 1h 2m");
        assert_eq!(s(59), "in 59s");
        assert_eq!(s(0), "now");
        assert_eq!(s(-300), "5m ago");
        assert_eq!(s(-(2 * 3_600 + 30)), "2h ago");
    }

    #[test]
    fn history_lists_versions_oldest_first_with_dashes_for_missing_times() {
        let t: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        let rec = |version, state| VersionRecord {
            version,
            state,
            fingerprint: format!("sha256:{version:0>8}"),
            origin: Default::default(),
            created_at: t,
            promoted_at: (version == 1).then_some(t),
            retired_at: None,
            username: None,
        };
        use crate::rotation::VersionState::*;
        let r = history_rows(&[rec(2, Staged), rec(1, Current)]);
        assert_eq!(
            r,
            rows(&[
                &[
                    "1",
                    "Current",
                    "sha256:00000001",
                    "2026-01-02T03:04:06Z",
                    "2026-01-02T03:04:06Z",
                    "-"
                ],
                &[
                    "2",
                    "Staged",
                    "sha256:00000002",
                    "2026-01-02T03:04:06Z",
                    "-",
                    "-"
                ],
            ])
        );
    }

    #[test]
    fn the_current_versions_user_name_is_shown_beside_it_and_history_gains_a_user_column() {
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let rec = |version, state, username: Option<&str>| VersionRecord {
            version,
            state,
            fingerprint: format!("sha256:{version:0>8}"),
            origin: Default::default(),
            created_at: t,
            promoted_at: None,
            retired_at: None,
            username: username.map(str::to_string),
        };
        use crate::rotation::VersionState::*;
        let mut rot: ApiKeyRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": crate::wire::API_VERSION, "kind": "ApiKeyRotation",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"secrets": {"verifier": "v", "presenter": "p"}},
        }))
        .unwrap();
        let versions = vec![
            rec(1, Previous, None),
            rec(2, Current, Some("app_blue")),
            rec(3, Staged, Some("app_green")),
        ];
        rot.status = Some(ApiKeyRotationStatus {
            current_version: Some(2),
            versions: versions.clone(),
            ..Default::default()
        });
        assert_eq!(status_row(&rot, false, t)[1], "2 (app_blue)");
        assert_eq!(history_headers(&versions)[2], "USER");
        let users: Vec<String> = history_rows(&versions)
            .into_iter()
            .map(|r| r[2].clone())
            .collect();
        assert_eq!(users, ["-", "app_blue", "app_green"]);
        let unnamed: Vec<VersionRecord> = versions
            .into_iter()
            .map(|r| VersionRecord {
                username: None,
                ..r
            })
            .collect();
        assert!(!history_headers(&unnamed).contains(&"USER"));
        assert_eq!(history_rows(&unnamed)[0].len(), 6);
        rot.status.as_mut().unwrap().versions = unnamed;
        assert_eq!(status_row(&rot, false, t)[1], "2");
    }

    #[test]
    fn a_rotation_without_status_reads_as_dashes() {
        let rot: ApiKeyRotation = serde_json::from_value(serde_json::json!({
            "apiVersion": crate::wire::API_VERSION, "kind": "ApiKeyRotation",
            "metadata": {"name": "new", "namespace": "shop"},
            "spec": {"secrets": {"verifier": "v", "presenter": "p"}},
        }))
        .unwrap();
        let row = status_row(&rot, true, Timestamp::UNIX_EPOCH);
        assert_eq!(row, ["shop", "new", "-", "-", "-", "-", "-", "-", "-"]);
    }

    #[test]
    fn details_name_the_consumers_still_waiting_and_how_many_more() {
        let status: ApiKeyRotationStatus = serde_json::from_value(serde_json::json!({
            "confirmation": {
                "verifiers": {"mode": "Report", "revision": 4, "confirmed": 3, "total": 3},
                "presenters": {"mode": "Report", "revision": 5, "confirmed": 1, "total": 4,
                               "waitingFor": ["shop/web-a", "shop/web-b"]},
            },
        }))
        .unwrap();
        assert_eq!(
            status_details(&status),
            "Waiting for presenters (Report, revision 5): shop/web-a, shop/web-b and 1 more\n"
        );
    }

    #[test]
    fn details_count_the_consumers_of_each_namespace_the_rotation_reaches() {
        let status: ApiKeyRotationStatus = serde_json::from_value(serde_json::json!({
            "namespaces": [
                {"namespace": "billing", "verifiers": 0, "presenters": 2},
                {"namespace": "orders", "verifiers": 3, "presenters": 0},
            ],
        }))
        .unwrap();
        assert_eq!(
            status_details(&status),
            "Consumers by namespace: billing (0 verifiers, 2 presenters), orders (3 verifiers, 0 presenters)\n"
        );
    }

    #[test]
    fn traffic_sums_the_endpoints_and_names_retired_versions() {
        use keyrotor_consumer::wire::Traffic;
        assert_eq!(traffic_details(0, &Traffic::default()), "");
        let t: Traffic = "accepted=3:1520,4:88;retired=2:5;client=10.0.0.5"
            .parse()
            .unwrap();
        assert_eq!(
            traffic_details(2, &t),
            "Traffic at 2 verifier endpoint(s): accepted v3 1520, v4 88\n\
             Retired versions still presented (a client missed a rotation): v2 5, last from 10.0.0.5\n"
        );
    }
}
