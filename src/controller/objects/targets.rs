//! Where a rotation's projected Secrets go beyond its own namespace
//! (`consumers.<group>.namespaces` and `namespaceSelector`), which copies
//! no namespace needs any more, and whether every namespace written to
//! agreed to it (docs/namespaces.md). Pure: the caches are asked through
//! [`View`].

use std::collections::BTreeMap;

use crate::api::{ConsumerGroup, LabelSelector};
use crate::rotation::Group;
use crate::wire as k;

/// What keyrotor knows of a Namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceInfo {
    pub labels: BTreeMap<String, String>,
    /// Its `keyrotor.dev/accept-from` annotation.
    pub accept_from: Option<String>,
}

/// The cluster as the caches show it.
pub trait View {
    /// A namespace (`None`: it does not exist).
    fn namespace(&self, name: &str) -> Option<NamespaceInfo>;
    /// The namespaces a selector matches.
    fn matching(&self, selector: &LabelSelector) -> Vec<String>;
    /// Whether keyrotor watches (and may write in) `ns`.
    fn watched(&self, ns: &str) -> bool;
    /// Whether a pod of `ns` references Secret `secret`.
    fn referenced(&self, ns: &str, secret: &str) -> bool;
}

/// What the spec asks for one rotation.
pub struct Ask<'a> {
    pub home: &'a str,
    pub rotation: &'a str,
    pub verifier_secret: &'a str,
    pub presenter_secret: &'a str,
    pub verifiers: &'a ConsumerGroup,
    pub presenters: &'a ConsumerGroup,
    /// The copies of this rotation's Secrets that exist: (namespace, name).
    pub copies: Vec<(String, String)>,
}

/// One namespace beyond home: which Secrets it holds a copy of, and which
/// groups name it (and so need a consumer there).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Place {
    pub verifier: bool,
    pub presenter: bool,
    pub verifiers_required: bool,
    pub presenters_required: bool,
}

/// Where one rotation's Secrets go beyond its namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets {
    /// Namespaces beyond home holding a copy, now or from now on.
    pub places: BTreeMap<String, Place>,
    /// Copies no target asks for and no pod references: (namespace, name).
    pub obsolete: Vec<(String, String)>,
    /// Namespaces that must hold a copy but may not, each with what to do.
    pub refused: Vec<String>,
}

impl Targets {
    /// The namespaces `group` names, each needing a consumer of its own.
    pub fn required(&self, group: Group) -> Vec<String> {
        self.places
            .iter()
            .filter(|(_, p)| match group {
                Group::Verifiers => p.verifiers_required,
                Group::Presenters => p.presenters_required,
            })
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// The Secret names `place` holds copies of.
    pub fn secrets<'a>(&self, ask: &Ask<'a>, place: &Place) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(2);
        if place.verifier {
            out.push(ask.verifier_secret);
        }
        if place.presenter && !out.contains(&ask.presenter_secret) {
            out.push(ask.presenter_secret);
        }
        out
    }
}

fn listed(group: &ConsumerGroup, home: &str, view: &dyn View) -> Vec<String> {
    let mut out: Vec<String> = group.namespaces.clone();
    if let Some(sel) = &group.namespace_selector {
        out.extend(view.matching(sel));
    }
    out.retain(|ns| ns != home);
    out.sort();
    out.dedup();
    out
}

/// Where `ask` reaches in the cluster `view` shows.
pub fn resolve(ask: &Ask, view: &dyn View) -> Targets {
    let mut targets = Targets::default();
    for ns in listed(ask.verifiers, ask.home, view) {
        let p = targets.places.entry(ns).or_default();
        (p.verifier, p.verifiers_required) = (true, true);
    }
    for ns in listed(ask.presenters, ask.home, view) {
        let p = targets.places.entry(ns).or_default();
        (p.presenter, p.presenters_required) = (true, true);
    }
    // A copy no target asks for stays (kept current, its pods waited for)
    // while a pod there references it: its consumers still read it.
    for (ns, name) in &ask.copies {
        let wanted = targets
            .places
            .get(ns)
            .is_some_and(|p| targets.secrets(ask, p).contains(&name.as_str()));
        if wanted {
            continue;
        }
        let is_verifier = name == ask.verifier_secret;
        let is_presenter = name == ask.presenter_secret;
        if (is_verifier || is_presenter) && view.referenced(ns, name) {
            let p = targets.places.entry(ns.clone()).or_default();
            p.verifier |= is_verifier;
            p.presenter |= is_presenter;
        } else {
            targets.obsolete.push((ns.clone(), name.clone()));
        }
    }
    for ns in targets.places.keys() {
        if let Some(why) = refusal(ask, ns, view) {
            targets.refused.push(why);
        }
    }
    targets
}

/// Why `ns` may not hold copies of `ask`'s Secrets (`None`: it may).
fn refusal(ask: &Ask, ns: &str, view: &dyn View) -> Option<String> {
    let who = format!("{}/{}", ask.home, ask.rotation);
    let Some(info) = view.namespace(ns) else {
        return Some(format!(
            "namespace {ns} does not exist: create it (annotated {}={}) or remove it from the rotation's namespaces",
            k::ACCEPT_FROM,
            ask.home
        ));
    };
    if !view.watched(ns) {
        return Some(format!(
            "keyrotor does not watch namespace {ns} (it runs with watchNamespaces): add {ns} to the chart's watchNamespaces, or remove it from the rotation's namespaces"
        ));
    }
    let agreed = info
        .accept_from
        .as_deref()
        .is_some_and(|a| k::accepts(a, ask.home, ask.rotation));
    (!agreed).then(|| {
        format!(
            "namespace {ns} has not agreed to hold copies of {who}: its annotation {} must list {} or {who} (a cluster admin runs: kubectl annotate namespace {ns} {}={}); nothing is written there until then",
            k::ACCEPT_FROM,
            ask.home,
            k::ACCEPT_FROM,
            ask.home
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default)]
    struct Cluster {
        namespaces: BTreeMap<String, NamespaceInfo>,
        unwatched: BTreeSet<String>,
        references: BTreeSet<(String, String)>,
    }

    impl Cluster {
        fn with(mut self, ns: &str, team: &str, accept: Option<&str>) -> Cluster {
            let info = NamespaceInfo {
                labels: [("team".to_string(), team.to_string())].into(),
                accept_from: accept.map(str::to_string),
            };
            self.namespaces.insert(ns.into(), info);
            self
        }
    }

    impl View for Cluster {
        fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
            self.namespaces.get(name).cloned()
        }
        fn matching(&self, selector: &LabelSelector) -> Vec<String> {
            self.namespaces
                .iter()
                .filter(|(_, i)| {
                    selector
                        .match_labels
                        .iter()
                        .all(|(k, v)| i.labels.get(k) == Some(v))
                })
                .map(|(n, _)| n.clone())
                .collect()
        }
        fn watched(&self, ns: &str) -> bool {
            !self.unwatched.contains(ns)
        }
        fn referenced(&self, ns: &str, secret: &str) -> bool {
            self.references
                .contains(&(ns.to_string(), secret.to_string()))
        }
    }

    fn group(namespaces: &[&str], team: Option<&str>) -> ConsumerGroup {
        ConsumerGroup {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            namespace_selector: team.map(|t| {
                serde_json::from_value(serde_json::json!({"matchLabels": {"team": t}})).unwrap()
            }),
            ..Default::default()
        }
    }

    fn ask<'a>(v: &'a ConsumerGroup, p: &'a ConsumerGroup, copies: &[(&str, &str)]) -> Ask<'a> {
        Ask {
            home: "orders",
            rotation: "api",
            verifier_secret: "api-verify",
            presenter_secret: "api-key",
            verifiers: v,
            presenters: p,
            copies: copies
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn listed_and_selected_namespaces_get_the_group_secret_and_need_its_consumers() {
        let cluster = Cluster::default()
            .with("gateway", "edge", Some("orders"))
            .with("checkout", "pay", Some("orders/api"))
            .with("billing", "pay", Some("other, orders"))
            .with("orders", "pay", None);
        let (v, p) = (
            group(&["gateway", "orders"], None),
            group(&["checkout"], Some("pay")),
        );
        let a = ask(&v, &p, &[]);
        let reach = resolve(&a, &cluster);
        assert!(reach.refused.is_empty(), "{:?}", reach.refused);
        assert!(reach.obsolete.is_empty());
        let names: Vec<&String> = reach.places.keys().collect();
        assert_eq!(
            names,
            ["billing", "checkout", "gateway"],
            "home is never a target"
        );
        let gw = &reach.places["gateway"];
        assert!(gw.verifier && gw.verifiers_required && !gw.presenter);
        assert_eq!(reach.secrets(&a, gw), ["api-verify"]);
        assert_eq!(reach.secrets(&a, &reach.places["billing"]), ["api-key"]);
    }

    #[test]
    fn a_namespace_that_did_not_agree_is_refused_with_what_to_do() {
        let mut cluster = Cluster::default()
            .with("billing", "pay", Some("orders/other"))
            .with("checkout", "pay", None)
            .with("edge", "x", Some("orders"));
        cluster.unwatched.insert("edge".into());
        let (v, p) = (
            group(&["edge"], None),
            group(&["billing", "checkout", "gone"], None),
        );
        let reach = resolve(&ask(&v, &p, &[]), &cluster);
        let said = reach.refused.join("\n");
        assert_eq!(reach.refused.len(), 4, "{said}");
        assert!(said.contains("namespace billing has not agreed to hold copies of orders/api"));
        assert!(
            said.contains("kubectl annotate namespace checkout keyrotor.dev/accept-from=orders")
        );
        assert!(said.contains("namespace gone does not exist"));
        assert!(said.contains("does not watch namespace edge"));
    }

    #[test]
    fn a_copy_no_target_asks_for_stays_while_a_pod_references_it_then_goes() {
        let mut cluster = Cluster::default()
            .with("billing", "pay", Some("orders"))
            .with("old", "pay", Some("orders"));
        cluster.references.insert(("old".into(), "api-key".into()));
        let (v, p) = (group(&[], None), group(&["billing"], None));
        let copies = [
            ("billing", "api-key"),
            ("old", "api-key"),
            ("old", "api-verify"),
            ("stale", "api-key"),
        ];
        let reach = resolve(&ask(&v, &p, &copies), &cluster);
        let old = &reach.places["old"];
        assert!(old.presenter && !old.presenters_required && !old.verifier);
        assert_eq!(
            reach.obsolete,
            [
                ("old".to_string(), "api-verify".to_string()),
                ("stale".to_string(), "api-key".to_string())
            ]
        );
        assert!(reach.refused.is_empty(), "{:?}", reach.refused);
    }
}
