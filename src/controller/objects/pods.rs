//! Consumer pods: which Secrets a pod references and which rotation groups it
//! belongs to (the slim copy the cache keeps is `index::SlimPod`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, Pod, PodSpec};

use crate::api::{LabelSelector, SelectorOperator};

/// Names of the Secrets a pod's spec references: volumes, projected volumes,
/// env and envFrom of every container (init and ephemeral included).
pub fn secret_refs(spec: &PodSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.insert(name);
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &src.secret {
                out.insert(s.name.clone());
            }
        }
    }
    out.extend(env_secret_refs(spec));
    out
}

/// Names of the Secrets a pod's containers read through environment
/// variables (`secretKeyRef`, `envFrom`): a subset of [`secret_refs`]. Their
/// values are fixed when a container starts, so such a pod never loads a
/// new version of them without a restart.
pub fn env_secret_refs(spec: &PodSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        collect_env(c.env.as_deref(), c.env_from.as_deref(), &mut out);
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        collect_env(c.env.as_deref(), c.env_from.as_deref(), &mut out);
    }
    out
}

fn collect_env(
    env: Option<&[EnvVar]>,
    env_from: Option<&[EnvFromSource]>,
    out: &mut BTreeSet<String>,
) {
    for e in env.unwrap_or_default() {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            out.insert(r.name.clone());
        }
    }
    for e in env_from.unwrap_or_default() {
        if let Some(r) = &e.secret_ref {
            out.insert(r.name.clone());
        }
    }
}

/// A label selector as `kubectl get -l` would take it, for messages.
pub fn selector_text(sel: &LabelSelector) -> String {
    let labels = sel.match_labels.iter().map(|(k, v)| format!("{k}={v}"));
    let expressions = sel.match_expressions.iter().map(|r| match r.operator {
        SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
        SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
        SelectorOperator::Exists => r.key.clone(),
        SelectorOperator::DoesNotExist => format!("!{}", r.key),
    });
    labels.chain(expressions).collect::<Vec<_>>().join(",")
}

/// A pod that serves traffic now: Running (also while terminating, since it
/// still answers requests during its grace period).
pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Whether `labels` satisfy a label selector.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector_matches_with(sel, |k| labels.get(k).map(String::as_str))
}

/// Whether the labels `label` looks up satisfy a label selector.
pub fn selector_matches_with<'a>(
    sel: &LabelSelector,
    label: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .all(|(k, v)| label(k) == Some(v.as_str()));
    labels_ok
        && sel.match_expressions.iter().all(|r| {
            let value = label(&r.key).map(str::to_string);
            let value = value.as_ref();
            match r.operator {
                SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_json(spec: serde_json::Value) -> Pod {
        let report = crate::wire::report("a", crate::wire::ROLE_VERIFIER);
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"},
                         "annotations": {report: "3", "other": "x"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": spec,
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        }))
        .unwrap()
    }

    #[test]
    fn every_way_a_pod_can_reference_a_secret_is_found() {
        let pod = pod_json(serde_json::json!({
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "projected": {"sources": [{"secret": {"name": "proj"}}]}}
            ],
            "initContainers": [{"name": "i", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]}],
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "env-from"}}],
                            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}]}]
        }));
        let refs = secret_refs(pod.spec.as_ref().unwrap());
        let want: BTreeSet<String> = ["vol", "proj", "init-env", "env-from", "env"]
            .map(String::from)
            .into();
        assert_eq!(refs, want);
        let env = env_secret_refs(pod.spec.as_ref().unwrap());
        let want: BTreeSet<String> = ["init-env", "env-from", "env"].map(String::from).into();
        assert_eq!(env, want, "volumes reload, env does not");
    }

    #[test]
    fn a_selector_reads_as_kubectl_takes_it() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(selector_text(&sel), "app=web,tier in (a,b),!canary");
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let sel =
            |json: serde_json::Value| -> LabelSelector { serde_json::from_value(json).unwrap() };
        assert!(selector_matches(
            &sel(serde_json::json!({"matchLabels": {"app": "web"}})),
            &labels
        ));
        assert!(!selector_matches(
            &sel(serde_json::json!({"matchLabels": {"app": "db"}})),
            &labels
        ));
        assert!(selector_matches(
            &sel(
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]})
            ),
            &labels
        ));
        assert!(selector_matches(
            &sel(
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]})
            ),
            &labels
        ));
        assert!(selector_matches(
            &sel(
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
            ),
            &labels
        ));
        assert!(!selector_matches(
            &sel(serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
            &labels
        ));
    }
}
