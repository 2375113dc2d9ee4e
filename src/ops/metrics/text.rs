//! The Prometheus text format 0.0.4 from prometheus-client's OpenMetrics
//! text: what `/metrics` serves and `promtool check metrics` reads.

/// OpenMetrics text as the Prometheus text format 0.0.4: a counter family's
/// HELP and TYPE name its samples (`x_total`), and the `# EOF` and `# UNIT`
/// lines, which 0.0.4 does not have, go.
pub fn text_format(open_metrics: &str) -> String {
    let lines: Vec<&str> = open_metrics.lines().collect();
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in lines {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (family, tail) = rest.split_once(' ')?;
            counters
                .contains(family)
                .then(|| format!("{prefix}{family}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
