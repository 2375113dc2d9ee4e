//! The API contract: the committed CRD is the generated one, the Rust
//! validation and the schema's CEL rules agree on every example, and status
//! carries what the planner needs and nothing secret.

use std::path::Path;

use serde::Deserialize;

use super::validate::validate;
use super::*;

fn parse(yaml: &str) -> ApiKeyRotation {
    serde_yaml::from_str(yaml).expect("example parses")
}

fn minimal() -> ApiKeyRotation {
    parse(
        "apiVersion: keyrotor.dev/v1alpha1\nkind: ApiKeyRotation\nmetadata: {name: k, namespace: n}\n\
         spec:\n  secrets: {verifier: k-verifier, presenter: k-presenter}\n",
    )
}

/// Runs the CRD's CEL rules on the object the way the apiserver would after
/// defaulting (serde fills every default when re-serializing).
fn cel(obj: &ApiKeyRotation) -> Result<(), String> {
    kube::core::cel::validate_cel(obj).map_err(|e| e.to_string())
}

fn rust(obj: &ApiKeyRotation) -> Result<validate::Validated, String> {
    validate(obj.metadata.name.as_deref().unwrap_or(""), &obj.spec).map_err(|e| e.to_string())
}

#[test]
fn the_committed_crd_is_the_generated_one() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/apikeyrotations.keyrotor.dev.yaml"),
    )
    .expect("crds/apikeyrotations.keyrotor.dev.yaml exists");
    assert!(
        committed == crd_yaml(),
        "crds/ drifted from the Rust types: run `cargo run -- crd > crds/apikeyrotations.keyrotor.dev.yaml`"
    );
}

#[test]
fn the_charts_crd_template_is_the_generated_one() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/keyrotor/templates/crd.yaml"),
    )
    .expect("charts/keyrotor/templates/crd.yaml exists");
    assert!(
        committed == crd_chart_template(),
        "the chart's CRD drifted from the Rust types: run `cargo run -- crd --chart > charts/keyrotor/templates/crd.yaml`"
    );
}

#[test]
fn the_chart_and_crds_carry_the_same_spec_text() {
    let plain = crd_yaml();
    let (_, plain_spec) = plain.split_once("\nspec:\n").unwrap();
    let chart = crd_chart_template();
    let (_, chart_spec) = chart.split_once("\nspec:\n").unwrap();
    let chart_spec = chart_spec.strip_suffix("{{- end }}\n").unwrap();
    assert_eq!(chart_spec, plain_spec);
    let (plain_meta, _) = plain.split_once("\nspec:\n").unwrap();
    assert!(
        plain_meta.ends_with("metadata:\n  name: apikeyrotations.keyrotor.dev"),
        "the chart template rebuilds metadata from the name alone"
    );
}

#[test]
fn the_crd_has_the_names_design_fixes() {
    let crd = ApiKeyRotation::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("apikeyrotations.keyrotor.dev")
    );
    assert_eq!(crd.spec.group, crate::wire::GROUP);
    assert_eq!(
        <ApiKeyRotation as kube::Resource>::api_version(&()),
        crate::wire::API_VERSION
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["akr".into()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["keyrotor".into()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Current", "Stage", "Ready", "Reason", "Next", "Age"]
    );
}

#[test]
fn every_spec_field_is_documented_for_kubectl_explain() {
    let crd = serde_json::to_value(ApiKeyRotation::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut undocumented = Vec::new();
    fn walk(path: &str, node: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                let p = format!("{path}.{name}");
                if child.get("description").is_none() {
                    out.push(p.clone());
                }
                walk(&p, child, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{path}[]"), items, out);
        }
    }
    walk("spec", spec, &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

/// Formats the API server knows (apiextensions-apiserver
/// `pkg/apiserver/validation/formats.go`, Kubernetes 1.33 and newer), with
/// its normalisation: string formats compare without `-`. Any other format
/// is ignored and makes `kubectl apply` and `helm install` print a warning.
fn unrecognized_format(ty: Option<&str>, format: &str) -> bool {
    const STRING_FORMATS: &[&str] = &[
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
    ];
    match ty {
        None | Some("string") => !STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        Some("integer") => !["int32", "int64"].contains(&format),
        Some("number") => !["float", "double"].contains(&format),
        Some(_) => true,
    }
}

#[test]
fn the_crd_has_no_format_the_api_server_would_warn_about() {
    let crd = serde_json::to_value(ApiKeyRotation::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut unknown = Vec::new();
    let mut formats = 0;
    fn walk(path: &str, node: &serde_json::Value, formats: &mut usize, out: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(format) = map.get("format").and_then(|f| f.as_str()) {
                    *formats += 1;
                    let ty = map.get("type").and_then(|t| t.as_str());
                    if unrecognized_format(ty, format) {
                        out.push(format!("{path}: {ty:?} {format:?}"));
                    }
                }
                for (key, child) in map {
                    walk(&format!("{path}.{key}"), child, formats, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), child, formats, out);
                }
            }
            _ => {}
        }
    }
    walk("openAPIV3Schema", schema, &mut formats, &mut unknown);
    assert!(
        unknown.is_empty(),
        "formats the API server does not know: {unknown:?}"
    );
    // The walk saw the integer fields (versions, counts), not an empty schema.
    assert!(formats > 20, "only {formats} formats in the schema");
}

#[test]
fn unsigned_fields_keep_their_lower_bound_of_zero() {
    let crd = serde_json::to_value(ApiKeyRotation::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let revoked = &schema["spec"]["properties"]["revokedVersions"]["items"];
    let current = &schema["status"]["properties"]["currentVersion"];
    let min_consumers = &schema["spec"]["properties"]["consumers"]["properties"]["verifiers"]["properties"]
        ["minConsumers"];
    for (name, field) in [
        ("spec.revokedVersions[]", revoked),
        ("status.currentVersion", current),
        ("spec.consumers.verifiers.minConsumers", min_consumers),
    ] {
        assert_eq!(field["format"], "int64", "{name}: {field}");
        assert_eq!(field["minimum"], 0.0, "{name}: {field}");
    }
}

#[test]
fn kubectl_explain_describes_the_resource_its_spec_and_its_status() {
    let crd = serde_json::to_value(ApiKeyRotation::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let description =
        |node: &serde_json::Value| node["description"].as_str().unwrap_or("").to_string();
    let top = description(schema);
    assert!(
        top.starts_with("ApiKeyRotation rotates one API key") && !top.contains("Auto-generated"),
        "top-level description: {top:?}"
    );
    let spec = description(&schema["properties"]["spec"]);
    let status = description(&schema["properties"]["status"]);
    assert!(spec.starts_with("The desired rotation"), "spec: {spec:?}");
    assert!(
        status.starts_with("The observed rotation"),
        "status: {status:?}"
    );
}

#[test]
fn a_minimal_spec_gets_safe_defaults() {
    let v = rust(&minimal()).unwrap();
    assert_eq!(v.policy.grace_minimum.as_secs(), 300);
    assert_eq!(v.policy.grace_maximum.as_secs(), 168 * 3600);
    assert!(v.policy.schedule.is_none());
    assert!(!v.policy.combined);
    assert!(v.key.entropy_bits() >= 192.0);
    assert_eq!(v.verifier_format, VerifierFormat::Sha256);
    assert!(v.policy.verifiers.nudge);
    cel(&minimal()).unwrap();
}

/// Every `.yaml` under `examples/` (subdirectories too, except the invalid
/// ones), each document of a multi-document file.
fn example_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "invalid") {
                example_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn the_examples_are_valid_for_rust_and_cel() {
    let mut files = Vec::new();
    example_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
        &mut files,
    );
    let mut checked = 0;
    let mut in_subdirs = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if value.get("kind").and_then(|k| k.as_str()) != Some("ApiKeyRotation") {
                continue;
            }
            let obj: ApiKeyRotation =
                serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            rust(&obj).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cel(&obj).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
            if path.parent().is_some_and(|p| !p.ends_with("examples")) {
                in_subdirs += 1;
            }
        }
    }
    assert!(checked >= 3);
    assert!(in_subdirs >= 1, "examples/reporter/ is checked too");
}

#[test]
fn every_invalid_example_is_refused_by_rust_and_by_cel_with_the_same_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()));
        let obj = parse(&text);
        let rust_err = rust(&obj)
            .err()
            .unwrap_or_else(|| panic!("{}: Rust accepted it", path.display()));
        assert!(
            rust_err.contains(expect),
            "{}: Rust said {rust_err:?}",
            path.display()
        );
        let cel_err = cel(&obj)
            .err()
            .unwrap_or_else(|| panic!("{}: CEL accepted it", path.display()));
        assert!(
            cel_err.contains(expect),
            "{}: CEL said {cel_err:?}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10);
}

#[test]
fn every_problem_is_reported_at_once_with_its_field_path() {
    let mut obj = minimal();
    obj.spec.grace_period.minimum = "forever".into();
    obj.spec.secrets.verifier = "Not_A_Name".into();
    obj.spec.key.prefix = Some("-bad".into());
    obj.spec.history_limit = 0;
    obj.spec.consumers.presenters.propagation_delay = "5d".into();
    let errs = validate("k", &obj.spec).unwrap_err().0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "spec.gracePeriod.minimum",
        "spec.secrets.verifier",
        "spec.key.prefix",
        "spec.historyLimit",
        "spec.consumers.presenters.propagationDelay",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let text = validate("k", &obj.spec).unwrap_err().to_string();
    assert!(
        text.contains("spec.gracePeriod.minimum: \"forever\" is not a duration"),
        "{text}"
    );
}

#[test]
fn rust_catches_what_cel_cannot() {
    let mut obj = minimal();
    obj.spec.schedule = Some(Schedule {
        interval: None,
        cron: Some("0 25 * * *".into()),
        time_zone: None,
    });
    assert!(rust(&obj).unwrap_err().contains("spec.schedule.cron"));
    obj.spec.schedule = Some(Schedule {
        interval: None,
        cron: Some("0 3 * * *".into()),
        time_zone: Some("Moon/Base".into()),
    });
    assert!(rust(&obj).unwrap_err().contains("spec.schedule.timeZone"));
    let mut obj = minimal();
    obj.spec.secrets.presenter = "k-v7".into();
    assert!(
        rust(&obj)
            .unwrap_err()
            .contains("clashes with keyrotor's version Secret names")
    );
    let mut obj = minimal();
    obj.spec.adopt = Some(Adoption {
        secret_name: "k-presenter".into(),
        key: "key".into(),
    });
    assert!(
        rust(&obj)
            .unwrap_err()
            .contains("must differ from the projected Secrets")
    );
    let long = "a".repeat(201);
    assert!(
        validate(&long, &minimal().spec)
            .unwrap_err()
            .to_string()
            .contains("metadata.name")
    );
}

#[test]
fn one_secret_name_for_both_groups_means_a_single_secret_layout() {
    let mut obj = minimal();
    obj.spec.secrets.presenter = obj.spec.secrets.verifier.clone();
    assert!(rust(&obj).unwrap().policy.combined);
}

#[test]
fn status_keeps_what_the_next_plan_needs() {
    use crate::rotation::*;
    let policy = rust(&minimal()).unwrap().policy;
    let mut obs = Observed::default();
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    obs.rotate.spec = Some("r1".into());
    let planned = plan(&policy, &obs, now);
    let status = ApiKeyRotationStatus::from_report(&planned.report, Some(3), None, now);
    assert_eq!(status.record(), planned.report.to_record());
    // Through JSON, as the apiserver stores it.
    let json = serde_json::to_string(&status).unwrap();
    let back: ApiKeyRotationStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status);
    assert_eq!(back.observed_generation, Some(3));
    assert_eq!(back.condition("Ready").unwrap().status, "False");
}

#[test]
fn an_unchanged_report_gives_an_identical_status() {
    use crate::rotation::*;
    let policy = rust(&minimal()).unwrap().policy;
    let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let planned = plan(&policy, &Observed::default(), t0);
    let first = ApiKeyRotationStatus::from_report(&planned.report, Some(1), None, t0);
    let later = t0 + jiff::SignedDuration::from_hours(1);
    let second = ApiKeyRotationStatus::from_report(&planned.report, Some(1), Some(&first), later);
    assert_eq!(
        first, second,
        "transition times carry over, so there is nothing to write"
    );
}

#[test]
fn a_hook_url_is_https_or_plain_http_inside_the_cluster() {
    use super::validate::hook_url_ok;
    for ok in [
        "https://hooks.example.com/redis",
        "https://10.0.0.1:8443/",
        "http://redis-hook.shop.svc:9380/",
        "http://redis-hook.shop.svc.cluster.local/v1",
        "http://127.0.0.1:9380/",
        "http://localhost:1/",
        "http://[::1]:9380/x",
    ] {
        assert!(hook_url_ok(ok), "{ok} refused");
    }
    for bad in [
        "http://hooks.example.com/",
        "http://10.0.0.1/",
        "http://svc/",
        "http://-x.svc/",
        "http://a.svc:99999999/",
        "ftp://a.svc/",
        "https://",
        "https://a b/",
    ] {
        assert!(!hook_url_ok(bad), "{bad} accepted");
    }
    let mut obj = minimal();
    obj.spec.verifier_hook = Some(HookEndpoint {
        url: "http://hooks.example.com/".into(),
        ca_bundle: None,
        token_secret_ref: Some(HookTokenRef {
            name: "t".into(),
            key: "token".into(),
        }),
        service_account_token: None,
        timeout_seconds: 10,
    });
    assert!(rust(&obj).unwrap_err().contains("spec.verifierHook.url"));
    let hook = obj.spec.verifier_hook.as_mut().unwrap();
    hook.url = "https://hooks.example.com/".into();
    hook.service_account_token = Some(HookServiceAccountToken {
        audience: "redis-hook".into(),
        expiration_seconds: 3600,
    });
    assert!(rust(&obj).unwrap_err().contains("exactly one of"), "both");
    let hook = obj.spec.verifier_hook.as_mut().unwrap();
    hook.token_secret_ref = None;
    assert!(rust(&obj).is_ok(), "a ServiceAccount token alone");
    obj.spec
        .verifier_hook
        .as_mut()
        .unwrap()
        .service_account_token = None;
    assert!(
        rust(&obj).unwrap_err().contains("exactly one of"),
        "neither"
    );
    obj.spec.verifier_hook.as_mut().unwrap().url = "http://hooks.example.com/".into();
    obj.spec.verifier_hook.as_mut().unwrap().token_secret_ref = Some(HookTokenRef {
        name: "t".into(),
        key: "token".into(),
    });
    obj.spec.issuer_hook = obj.spec.verifier_hook.take();
    assert!(rust(&obj).unwrap_err().contains("spec.issuerHook.url"));
}

#[test]
fn usernames_take_one_name_or_two_different_ones_and_reach_the_policy() {
    let with = |names: &[&str]| {
        let mut obj = minimal();
        obj.spec.usernames = names.iter().map(|n| n.to_string()).collect();
        obj
    };
    for ok in [&["app"][..], &["app_blue", "app_green"], &["_x.y-z", "A9"]] {
        let obj = with(ok);
        let policy = rust(&obj).unwrap_or_else(|e| panic!("{ok:?}: {e}")).policy;
        assert_eq!(
            policy.usernames, ok,
            "the policy carries the names in order"
        );
        cel(&obj).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    assert!(rust(&minimal()).unwrap().policy.usernames.is_empty());
    let long = "u".repeat(64);
    for (bad, says) in [
        (&["a", "b", "c"][..], "at most 2 items"),
        (&["a", "a"], "lists a name twice"),
        (&["app blue"], "must start with a letter or '_'"),
        (&["1app"], "must start with a letter or '_'"),
        (&["app;drop"], "must start with a letter or '_'"),
        (&[long.as_str()], "at most 63 characters"),
    ] {
        let obj = with(bad);
        let r = rust(&obj).unwrap_err();
        assert!(
            r.contains("spec.usernames") && r.contains(says),
            "{bad:?}: Rust said {r}"
        );
        let c = cel(&obj).unwrap_err();
        assert!(c.contains(says), "{bad:?}: CEL said {c}");
    }
}

#[test]
fn the_crd_defaults_status_so_kstatus_waits_for_keyrotor_on_a_new_rotation() {
    // kstatus (Flux's `wait`) calls an object with no status Current; with
    // observedGeneration 0 from the API server it says InProgress until
    // keyrotor writes status for generation 1.
    let crd = serde_json::to_value(ApiKeyRotation::crd()).unwrap();
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["default"],
        serde_json::json!({"observedGeneration": 0})
    );
}
