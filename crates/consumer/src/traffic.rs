//! What a verifier endpoint checked, per version, as its pod reports it in
//! the `<rotation>.keyrotor.dev/traffic` annotation:
//!
//! ```text
//! accepted=3:1520,4:88;retired=2:5;client=10.0.0.5
//! ```
//!
//! Counts are since the process started (they only grow, like Prometheus
//! counters); `client` is the address that last presented a retired version,
//! when the gateway passed one on. The operator turns a growing retired
//! count into a Warning event; `kubectl keyrotor status` shows the counts.
//! Nothing here is key material: versions, counts and an IP address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::wire::Version;

/// Counts of checked requests, per version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub accepted: BTreeMap<Version, u64>,
    /// A version this verifier once accepted, presented after its retirement.
    pub retired: BTreeMap<Version, u64>,
    /// Who last presented a retired version (from the gateway's header).
    pub client: Option<IpAddr>,
}

impl Traffic {
    /// Every retired presentation, whatever the version.
    pub fn retired_total(&self) -> u64 {
        self.retired.values().sum()
    }

    /// Adds `other`'s counts (several verifier pods of one rotation).
    pub fn add(&mut self, other: &Traffic) {
        for (v, n) in &other.accepted {
            *self.accepted.entry(*v).or_default() += n;
        }
        for (v, n) in &other.retired {
            *self.retired.entry(*v).or_default() += n;
        }
        if other.client.is_some() {
            self.client = other.client;
        }
    }

    /// The annotation value.
    pub fn format(&self) -> String {
        let counts = |m: &BTreeMap<Version, u64>| {
            m.iter()
                .map(|(v, n)| format!("{v}:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = format!(
            "accepted={};retired={}",
            counts(&self.accepted),
            counts(&self.retired)
        );
        if let Some(ip) = self.client {
            out.push_str(&format!(";client={ip}"));
        }
        out
    }

    /// Parses an annotation value; parts it does not understand are skipped
    /// (a newer sidecar may add some), malformed counts are dropped.
    pub fn parse(text: &str) -> Traffic {
        let mut t = Traffic::default();
        for part in text.split(';') {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            match name.trim() {
                "accepted" => t.accepted = counts(value),
                "retired" => t.retired = counts(value),
                "client" => t.client = value.trim().parse().ok(),
                _ => {}
            }
        }
        t
    }
}

fn counts(text: &str) -> BTreeMap<Version, u64> {
    text.split(',')
        .filter_map(|e| {
            let (v, n) = e.split_once(':')?;
            Some((v.trim().parse().ok()?, n.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_round_trips_and_tolerates_what_it_does_not_know() {
        let t = Traffic {
            accepted: BTreeMap::from([(3, 1520), (4, 88)]),
            retired: BTreeMap::from([(2, 5)]),
            client: Some("10.0.0.5".parse().unwrap()),
        };
        let text = t.format();
        assert_eq!(text, "accepted=3:1520,4:88;retired=2:5;client=10.0.0.5");
        assert_eq!(Traffic::parse(&text), t);
        let newer = Traffic::parse("accepted=3:x,4:2;future=1;retired=;client=not-an-ip");
        assert_eq!(newer.accepted, BTreeMap::from([(4, 2)]));
        assert!(newer.retired.is_empty() && newer.client.is_none());
    }

    #[test]
    fn pods_add_up() {
        let mut sum = Traffic::parse("accepted=1:2;retired=0:1");
        sum.add(&Traffic::parse("accepted=1:3,2:1;retired=0:2;client=::1"));
        assert_eq!(sum.format(), "accepted=1:5,2:1;retired=0:3;client=::1");
        assert_eq!(sum.retired_total(), 3);
    }
}
