//! When a workload's rollout has finished, the way `kubectl rollout status`
//! decides it: the controller saw the latest spec, and every replica runs the
//! new template and is available.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};

pub fn deployment_done(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) >= want
        && s.replicas.unwrap_or(0) == s.updated_replicas.unwrap_or(0)
        && s.available_replicas.unwrap_or(0) >= want
}

pub fn statefulset_done(d: &StatefulSet) -> bool {
    let Some(s) = &d.status else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.update_revision.is_some()
        && s.update_revision == s.current_revision
        && s.ready_replicas.unwrap_or(0) >= want
}

pub fn daemonset_done(d: &DaemonSet) -> bool {
    let Some(s) = &d.status else { return false };
    s.observed_generation >= d.metadata.generation
        && s.updated_number_scheduled.unwrap_or(0) >= s.desired_number_scheduled
        && s.number_available.unwrap_or(0) >= s.desired_number_scheduled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_is_done_when_every_replica_runs_the_new_template() {
        let done = serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert!(deployment_done(&deployment(3, done.clone())));
        assert!(
            !deployment_done(&deployment(4, done)),
            "the controller has not seen the new spec"
        );
        let surging = serde_json::json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2});
        assert!(
            !deployment_done(&deployment(3, surging)),
            "an old replica still runs"
        );
    }

    #[test]
    fn a_statefulset_is_done_when_its_revisions_converge() {
        let set = |current: &str| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "s", "generation": 1},
                "spec": {"replicas": 1, "selector": {}, "serviceName": "s", "template": {}},
                "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updateRevision": "r2", "currentRevision": current},
            }))
            .unwrap()
        };
        assert!(statefulset_done(&set("r2")));
        assert!(!statefulset_done(&set("r1")));
    }
}
