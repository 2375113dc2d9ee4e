//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`, `/version`),
//! enough for kube's `Discovery` and for kubectl to map kinds to resources.

use super::resources::ResourceType;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Answers a discovery path, or None when the path is not a discovery path.
pub fn answer(path: &str, types: &[ResourceType]) -> Option<Value> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Some(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-keyrotor-testkit",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "",
            "compiler": "", "platform": "linux/amd64"
        })),
        ["api"] => Some(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
        })),
        ["api", "v1"] => Some(resource_list(
            "v1",
            types
                .iter()
                .filter(|t| t.group.is_empty() && t.version == "v1"),
        )),
        ["apis"] => {
            let groups: Vec<Value> = groups(types)
                .into_iter()
                .map(|(g, vs)| group_doc(&g, &vs))
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", group] => groups(types).get(*group).map(|vs| {
            let mut doc = group_doc(group, vs);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        }),
        ["apis", group, version] => {
            let matching: Vec<&ResourceType> = types
                .iter()
                .filter(|t| t.group == *group && t.version == *version)
                .collect();
            (!matching.is_empty())
                .then(|| resource_list(&format!("{group}/{version}"), matching.into_iter()))
        }
        _ => None,
    }
}

fn groups(types: &[ResourceType]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let vs = out.entry(t.group.clone()).or_default();
        if !vs.contains(&t.version) {
            vs.push(t.version.clone());
        }
    }
    out
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

fn resource_list<'a>(group_version: &str, types: impl Iterator<Item = &'a ResourceType>) -> Value {
    let mut resources = vec![];
    for t in types {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.kind.to_lowercase(),
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
            "shortNames": t.short_names,
            "categories": t.categories,
        }));
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
