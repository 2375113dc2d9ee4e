//! The metric names a PromQL expression selects, for checking that the
//! shipped alerts and dashboard name only metrics that exist. A small
//! lexer, not a parser: it skips strings, label matchers (`{…}`), ranges
//! (`[…]`), numbers and durations, Grafana variables (`$x`), keywords,
//! function and aggregation names (an identifier followed by `(`, `by` or
//! `without`) and the
//! label lists of `by`, `without`, `on`, `ignoring`, `group_left` and
//! `group_right`. What is left is a metric name. Syntax itself is promtool's
//! business (`tests/cli/monitoring.rs` runs it on every expression).

const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

pub fn selected_metrics(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_to(&chars, i, '}'),
            '[' => i = skip_to(&chars, i, ']'),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_to(&chars, i, '}');
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers and durations (5m, 1e3, 0x1f, 1.5).
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                // `f(` is a call; `sum by (…) (` an aggregation.
                let rest: String = chars[next..].iter().take(8).collect();
                let called = chars.get(next) == Some(&'(')
                    || ["by", "without"].iter().any(|k| {
                        rest.strip_prefix(k)
                            .is_some_and(|r| r.starts_with(|c: char| c == '(' || c.is_whitespace()))
                    });
                if LABEL_LISTS.contains(&word.as_str()) {
                    if called {
                        i = skip_to(&chars, next, ')');
                    }
                } else if !called && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string that starts at `i` (backslash escapes, except
/// in backticks).
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index after the `close` that ends the group opened at `i`, skipping
/// strings inside (label values may hold any character).
fn skip_to(chars: &[char], mut i: usize, close: char) -> usize {
    i += 1;
    while i < chars.len() && chars[i] != close {
        if matches!(chars[i], '"' | '\'' | '`') {
            i = skip_string(chars, i);
        } else {
            i += 1;
        }
    }
    i + 1
}

#[test]
fn the_lexer_finds_selectors_and_nothing_else() {
    for (expr, want) in [
        (
            "max by (namespace, name) (keyrotor_migration_stalled) > 0",
            vec!["keyrotor_migration_stalled"],
        ),
        (
            r#"sum by (job, category) (increase(keyrotor_reconcile_errors_total{category!="conflict",x="}{[("}[15m])) >= 3"#,
            vec!["keyrotor_reconcile_errors_total"],
        ),
        (r#"absent(up{job="keyrotor-metrics"} == 1)"#, vec!["up"]),
        (
            "time() - a_seconds offset 5m > on(namespace) group_left(name) b_info and bool c",
            vec!["a_seconds", "b_info", "c"],
        ),
        (
            r#"histogram_quantile(0.99, sum without (pod) (rate(h_bucket{job=~"$job"}[$__rate_interval])))"#,
            vec!["h_bucket"],
        ),
        (
            "sum(x) by (le) / ignoring (version) sum(y) unless 1.5e3 * z",
            vec!["x", "y", "z"],
        ),
        (
            "label_replace(m, 'dst', \"$1\", \"src\", \"(.*)\")",
            vec!["m"],
        ),
    ] {
        assert_eq!(selected_metrics(expr), want, "in {expr}");
    }
}
