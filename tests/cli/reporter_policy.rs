//! The reporter admission policy's CEL (charts/keyrotor/templates/reporter-policy.yaml,
//! read here from its render in deploy/operator/keyrotor.yaml) evaluated with
//! kube-cel the way the apiserver evaluates a ValidatingAdmissionPolicy:
//! match conditions first (not matched ⇒ allowed), then every validation.

use std::path::Path;

use keyrotor::wire::{self as k, LastSeen, RevisionReport};
use kube::core::cel::{KubeCelExt, cel};
use serde_json::{Value, json};

struct Policy {
    conditions: Vec<String>,
    validations: Vec<String>,
}

fn policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/operator/keyrotor.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let vap = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("the file holds the policy");
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("the file holds its binding");
    assert_eq!(binding["spec"]["policyName"], vap["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(vap["apiVersion"], "admissionregistration.k8s.io/v1");
    let rules = &vap["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["resources"], json!(["pods"]));
    assert_eq!(rules["operations"], json!(["UPDATE"]));
    let exprs = |key: &str| -> Vec<String> {
        vap["spec"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["expression"].as_str().unwrap().to_string())
            .collect()
    };
    Policy {
        conditions: exprs("matchConditions"),
        validations: exprs("validations"),
    }
}

fn eval(expr: &str, object: &Value, old: &Value, request: &Value) -> bool {
    let program = cel::Program::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut ctx = cel::Context::default().with_all();
    for (name, value) in [("object", object), ("oldObject", old), ("request", request)] {
        ctx.add_variable_from_value(name, cel::to_value(value).unwrap());
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => b,
        other => panic!("{expr} gave {other:?}"),
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    NotMatched,
    Allowed,
    Denied(usize),
}

fn admit(policy: &Policy, object: &Value, old: &Value, request: &Value) -> Verdict {
    if !policy
        .conditions
        .iter()
        .all(|c| eval(c, object, old, request))
    {
        return Verdict::NotMatched;
    }
    match policy
        .validations
        .iter()
        .position(|v| !eval(v, object, old, request))
    {
        Some(i) => Verdict::Denied(i),
        None => Verdict::Allowed,
    }
}

/// The revision report of rotation `api`'s verifier Secret (key, value).
fn report(revision: u64) -> (String, Value) {
    let (key, value) = RevisionReport(revision).annotation("api", k::ROLE_VERIFIER);
    (key, json!(value))
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": "u-1",
            "labels": {"app": "orders"},
            "annotations": {"team": "orders", report(3).0: report(3).1},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "orders-7d9", "uid": "rs-1"}],
        },
        "spec": {"serviceAccountName": "orders-api", "containers": [{"name": "app", "image": "orders:1"}]},
        "status": {"phase": "Running"},
    })
}

fn request(user: &str, bound_pod: Option<&str>) -> Value {
    let mut extra = json!({});
    if let Some(p) = bound_pod {
        extra = json!({
            "authentication.kubernetes.io/pod-name": [p],
            "authentication.kubernetes.io/pod-uid": ["u-1"],
        });
    }
    json!({
        "operation": "UPDATE", "namespace": "shop", "name": "orders-0",
        "userInfo": {"username": user, "groups": ["system:serviceaccounts"], "extra": extra},
    })
}

const OWN_SA: &str = "system:serviceaccount:shop:orders-api";

fn changed(edit: impl FnOnce(&mut Value)) -> Value {
    let mut obj = pod("orders-0");
    edit(&mut obj);
    obj
}

#[test]
fn a_pod_may_report_on_itself() {
    let p = policy();
    let old = pod("orders-0");
    let own = request(OWN_SA, Some("orders-0"));
    let update = changed(|o| {
        let ann = &mut o["metadata"]["annotations"];
        let (key, value) = report(4);
        ann[key] = value;
        let seen = LastSeen([(3, "2026-03-01T10:00:00Z".parse().unwrap())].into());
        let (key, value) = seen.annotation("api");
        ann[key] = json!(value);
        let (key, value) = RevisionReport(9).annotation("billing", k::ROLE_PRESENTER);
        ann[key] = json!(value);
    });
    assert_eq!(admit(&p, &update, &old, &own), Verdict::Allowed);
    let removal = changed(|o| {
        o["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(&report(3).0);
    });
    assert_eq!(
        admit(&p, &removal, &old, &own),
        Verdict::Allowed,
        "removing its own report"
    );
    let first = changed(|o| {
        o["metadata"]["annotations"] = json!({"team": "orders"});
    });
    let reported = changed(|o| o["metadata"]["annotations"][report(1).0] = report(1).1);
    let mut bare_old = first.clone();
    bare_old["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let mut bare_new = bare_old.clone();
    bare_new["metadata"]["annotations"] = json!({report(1).0: report(1).1});
    assert_eq!(admit(&p, &reported, &first, &own), Verdict::Allowed);
    assert_eq!(
        admit(&p, &bare_new, &bare_old, &own),
        Verdict::Allowed,
        "a pod without annotations"
    );
}

#[test]
fn a_pod_may_not_annotate_another_pod_of_its_service_account() {
    let p = policy();
    let old = pod("orders-1");
    let mut update = old.clone();
    update["metadata"]["annotations"][report(4).0] = report(4).1;
    assert_eq!(
        admit(&p, &update, &old, &request(OWN_SA, Some("orders-0"))),
        Verdict::Denied(0)
    );
    assert_eq!(
        admit(&p, &update, &old, &request(OWN_SA, None)),
        Verdict::Denied(0),
        "an unbound token"
    );
}

#[test]
fn a_pod_may_not_change_other_annotations_labels_or_its_spec() {
    let p = policy();
    let old = pod("orders-0");
    let own = request(OWN_SA, Some("orders-0"));
    let foreign =
        changed(|o| o["metadata"]["annotations"]["sidecar.istio.io/inject"] = json!("false"));
    assert_eq!(admit(&p, &foreign, &old, &own), Verdict::Denied(1));
    let edited = changed(|o| o["metadata"]["annotations"]["team"] = json!("payments"));
    assert_eq!(admit(&p, &edited, &old, &own), Verdict::Denied(1));
    let dropped = changed(|o| {
        o["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("team");
    });
    assert_eq!(admit(&p, &dropped, &old, &own), Verdict::Denied(1));
    let lookalike = changed(|o| o["metadata"]["annotations"]["keyrotor.dev/rotate"] = json!("now"));
    assert_eq!(
        admit(&p, &lookalike, &old, &own),
        Verdict::Denied(1),
        "the operator's own annotations are not reports"
    );
    let label = changed(|o| o["metadata"]["labels"]["app"] = json!("payments"));
    assert_eq!(admit(&p, &label, &old, &own), Verdict::Denied(2));
    let new_label = changed(|o| o["metadata"]["labels"]["quarantine"] = json!("off"));
    assert_eq!(admit(&p, &new_label, &old, &own), Verdict::Denied(2));
    let finalizer = changed(|o| o["metadata"]["finalizers"] = json!(["example.com/keep"]));
    assert_eq!(admit(&p, &finalizer, &old, &own), Verdict::Denied(2));
    let spec = changed(|o| o["spec"]["containers"][0]["image"] = json!("evil:1"));
    assert_eq!(admit(&p, &spec, &old, &own), Verdict::Denied(3));
}

#[test]
fn requests_by_other_users_are_not_affected() {
    let p = policy();
    let old = pod("orders-0");
    let anything = changed(|o| {
        o["metadata"]["labels"]["app"] = json!("payments");
        o["metadata"]["annotations"]["sidecar.istio.io/inject"] = json!("false");
        o["spec"]["containers"][0]["image"] = json!("orders:2");
    });
    for user in [
        "system:serviceaccount:keyrotor-system:keyrotor",
        "system:serviceaccount:shop:deployer",
        "system:node:worker-1",
        "alice@example.com",
    ] {
        assert_eq!(
            admit(&p, &anything, &old, &request(user, Some("other-0"))),
            Verdict::NotMatched,
            "{user}"
        );
        assert_eq!(
            admit(&p, &anything, &old, &request(user, None)),
            Verdict::NotMatched,
            "{user}"
        );
    }
}
