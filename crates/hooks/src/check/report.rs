//! The kit's result: one [`Row`] per check, printed as a Markdown table
//! (readable in a terminal, pasted as is into a pull request or CI
//! summary) and optionally written as JSON. Rows hold what the judge said:
//! statuses, outcomes, cleaned reasons, key lengths; never a key.

use serde_json::json;

use super::cases::Role;

/// One check: its name, whether it passed, what was expected and what came
/// back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub check: String,
    pub passed: bool,
    pub expected: String,
    pub got: String,
}

/// A run of the kit against one hook.
#[derive(Clone, Debug)]
pub struct Report {
    pub url: String,
    pub role: Role,
    /// The made-up rotation the requests named: namespace, name, and the
    /// uid of each of its incarnations (not secret).
    pub namespace: String,
    pub rotation: String,
    pub uids: Vec<String>,
    pub rows: Vec<Row>,
    /// What the clean-up did (not checks: the hook may refuse to retire
    /// its last key).
    pub notes: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.passed).count()
    }

    /// The row named `check`, if any.
    pub fn row(&self, check: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.check == check)
    }

    /// The table, with a title line above and the notes and the count below.
    pub fn markdown(&self) -> String {
        let head = ["check", "result", "expected", "got"];
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.check.as_str(),
                    if r.passed { "PASS" } else { "FAIL" },
                    &r.expected,
                    &r.got,
                ]
                .map(|c| c.replace('|', "\\|"))
            })
            .collect();
        let widths: Vec<usize> = (0..4)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |c: [&str; 4]| {
            let padded: Vec<String> = c
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = format!(
            "keyrotor hook check: {} as {} hook (rotation {}/{})\n\n",
            self.url,
            match self.role {
                Role::Verifier => "a verifier",
                Role::Issuer => "an issuer",
            },
            self.namespace,
            self.rotation
        );
        out.push_str(&line(head));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        for c in &cells {
            out.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
        }
        out.push('\n');
        for note in &self.notes {
            out.push_str(&format!("- {note}\n"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} of {} checks passed\n",
            self.rows.len() - self.failed(),
            self.rows.len()
        ));
        out
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "url": self.url,
            "role": self.role.as_str(),
            "namespace": self.namespace,
            "rotation": self.rotation,
            "uids": self.uids,
            "passed": self.failed() == 0,
            "checks": self.rows.iter().map(|r| json!({
                "check": r.check,
                "passed": r.passed,
                "expected": r.expected,
                "got": r.got,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let row = |check: &str, passed, got: &str| Row {
            check: check.into(),
            passed,
            expected: "done".into(),
            got: got.into(),
        };
        Report {
            url: "http://127.0.0.1:9380/".into(),
            role: Role::Verifier,
            namespace: "keyrotor-check".into(),
            rotation: "keyrotor-check-0a1b2c3d".into(),
            uids: vec!["u".into()],
            rows: vec![
                row("stage v1", true, "HTTP 204 done"),
                row("retire v17, never staged", false, "HTTP 500 | oops"),
            ],
            notes: vec!["clean-up: retired v3".into()],
        }
    }

    #[test]
    fn the_table_has_a_row_per_check_with_pass_or_fail_and_the_count() {
        let text = report().markdown();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "keyrotor hook check: http://127.0.0.1:9380/ as a verifier hook (rotation keyrotor-check/keyrotor-check-0a1b2c3d)"
        );
        assert!(lines[2].starts_with("| check "), "{text}");
        assert!(lines[3].starts_with("|---"), "{text}");
        assert!(
            lines[4].starts_with("| stage v1 ") && lines[4].contains("| PASS "),
            "{text}"
        );
        assert!(lines[5].contains("| FAIL ") && lines[5].contains("HTTP 500 \\| oops"));
        // Columns line up: every table line is as long as the header.
        assert!(
            lines[2..6].iter().all(|l| l.len() == lines[2].len()),
            "{text}"
        );
        assert!(text.contains("- clean-up: retired v3\n"));
        assert!(text.ends_with("1 of 2 checks passed\n"));
    }

    #[test]
    fn json_says_whether_every_check_passed() {
        let mut r = report();
        assert_eq!(r.json()["passed"], false);
        assert_eq!(r.json()["checks"][1]["got"], "HTTP 500 | oops");
        r.rows.truncate(1);
        assert_eq!(r.json()["passed"], true);
    }
}
