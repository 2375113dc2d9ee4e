//! What `/metrics` serves, and the text format it is served in: the
//! operator's registry and the verifier's both implement [`Exposition`]
//! with prometheus-client, whose OpenMetrics output [`text_format`] turns
//! into the Prometheus text format 0.0.4 that the Content-Type names and
//! `promtool check metrics` reads.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// What `/metrics` serves: the operator's registry, or the verifier's.
pub trait Exposition: Send + Sync + 'static {
    /// The Prometheus text format.
    fn encode(&self) -> String;
}

/// A prometheus-client registry in the Prometheus text format 0.0.4.
pub fn encode_registry(registry: &Registry) -> String {
    let mut open_metrics = String::new();
    let _ = encode(&mut open_metrics, registry);
    text_format(&open_metrics)
}

/// OpenMetrics text as the Prometheus text format 0.0.4: a counter family's
/// HELP and TYPE name its samples (`x_total`), and the `# EOF` and `# UNIT`
/// lines, which 0.0.4 does not have, go. (OpenMetrics names a counter
/// family without its `_total` suffix: a 0.0.4 parser would see samples of
/// a family that has no HELP or TYPE.)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_total_in_help_and_type_and_openmetrics_lines_go() {
        let open_metrics = "\
# HELP app_requests Requests.
# TYPE app_requests counter
app_requests_total{code=\"200\"} 3
# HELP app_up Up.
# TYPE app_up gauge
# UNIT app_up seconds
app_up 1
# EOF
";
        assert_eq!(
            text_format(open_metrics),
            "\
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{code=\"200\"} 3
# HELP app_up Up.
# TYPE app_up gauge
app_up 1
"
        );
    }
}
