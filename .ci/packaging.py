"""Checks of keyrotor's packaging that need a YAML parser; run by
.ci/check-packaging with the tools' Python (PyYAML and jsonschema come with
yamllint and kubernetes-validate).

    packaging.py crd-drift RENDERED_CRD      chart's rendered CRD == crds/ (but labels, keep policy)
    packaging.py deploy-contract RENDERED    kubectl kustomize deploy/ has the objects the e2e suite uses
    packaging.py examples-schema             examples/ against the CRD's OpenAPI schema, unknown fields refused
    packaging.py artifacthub                 Chart.yaml's crdsExamples is examples/rotation.yaml
    packaging.py values-docs                 every value in values.yaml has a `# --` comment (or its parent has)
    packaging.py image-names                 the chart, deploy/, examples/ and docs name the image Cargo.toml names
    packaging.py alerts RULE DASHBOARD JOB URL  the chart's PrometheusRule and dashboard ConfigMap (rendered
                                             with prometheusRule.job=JOB, runbookUrl=URL) are the sources in
                                             monitoring/; each alert has a runbook section and a firing test
"""

import copy
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRD = ROOT / "crds" / "apikeyrotations.keyrotor.dev.yaml"


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def fail(msg):
    print(f"packaging: {msg}", file=sys.stderr)
    sys.exit(1)


def crd_drift(rendered):
    (chart,) = [d for d in docs(rendered) if d.get("kind") == "CustomResourceDefinition"]
    (plain,) = docs(CRD)
    meta = chart["metadata"]
    if meta.get("annotations", {}).get("helm.sh/resource-policy") != "keep":
        fail("the chart's CRD lacks helm.sh/resource-policy: keep by default")
    meta.pop("labels", None)
    meta.pop("annotations", None)
    if chart != plain:
        fail("the chart's rendered CRD differs from crds/: run `cargo run -- crd --chart > charts/keyrotor/templates/crd.yaml`")


# What the e2e suite and `kubectl apply -k deploy/` rely on.
EXPECTED = {
    ("Namespace", "keyrotor-system", None),
    ("ServiceAccount", "keyrotor", "keyrotor-system"),
    ("ClusterRole", "keyrotor", None),
    ("ClusterRoleBinding", "keyrotor", None),
    ("Role", "keyrotor-hook-tokens", "keyrotor-system"),
    ("Role", "keyrotor-leader-election", "keyrotor-system"),
    ("RoleBinding", "keyrotor-hook-tokens", "keyrotor-system"),
    ("RoleBinding", "keyrotor-leader-election", "keyrotor-system"),
    ("Deployment", "keyrotor", "keyrotor-system"),
    ("Service", "keyrotor-metrics", "keyrotor-system"),
    ("ValidatingAdmissionPolicy", "keyrotor-reporter", None),
    ("ValidatingAdmissionPolicyBinding", "keyrotor-reporter", None),
}


def deploy_contract(rendered):
    objs = docs(rendered)
    got = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs}
    if got != EXPECTED:
        fail(f"kubectl kustomize deploy/ renders {sorted(got, key=str)}; expected {sorted(EXPECTED, key=str)}")
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    binding = by[("ClusterRoleBinding", "keyrotor")]
    if binding["subjects"] != [{"kind": "ServiceAccount", "name": "keyrotor", "namespace": "keyrotor-system"}]:
        fail(f"ClusterRoleBinding keyrotor binds {binding['subjects']}")
    pod = by[("Deployment", "keyrotor")]["spec"]["template"]["spec"]
    if pod["serviceAccountName"] != "keyrotor":
        fail("the Deployment does not run as ServiceAccount keyrotor")
    args = pod["containers"][0]["args"]
    if "--leader-election" not in args:
        fail(f"the Deployment runs without leader election: {args}")
    if any(o.get("kind") == "CustomResourceDefinition" for o in objs):
        fail("deploy/ must not install the CRD (kubectl apply -f crds/ does)")


def strict(schema):
    """The CRD schema as the apiserver applies it with strict field
    validation: objects without x-kubernetes-preserve-unknown-fields refuse
    unknown properties; nullable fields accept null."""
    s = copy.deepcopy(schema)

    def walk(n):
        if not isinstance(n, dict):
            return
        if n.get("nullable"):
            t = n.get("type")
            if isinstance(t, str):
                n["type"] = [t, "null"]
            if "enum" in n:
                n["enum"] = list(n["enum"]) + [None]
        if n.get("type") in ("object", ["object", "null"]) and "properties" in n \
                and not n.get("x-kubernetes-preserve-unknown-fields"):
            n.setdefault("additionalProperties", False)
        for v in n.values():
            if isinstance(v, dict):
                walk(v)
            elif isinstance(v, list):
                for e in v:
                    walk(e)

    walk(s)
    return s


def examples_schema():
    (crd,) = docs(CRD)
    (version,) = crd["spec"]["versions"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    # metadata is the apiserver's business, not the CRD's.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    checked = 0
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        if "invalid" in path.parts:
            continue
        for d in docs(path):
            if d.get("kind") != "ApiKeyRotation":
                continue
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(d), key=str)
            if errors:
                fail(f"{path.relative_to(ROOT)}: " + "; ".join(
                    f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors))
            checked += 1
    if checked < 3:
        fail(f"only {checked} example ApiKeyRotations found")
    print(f"packaging: {checked} example ApiKeyRotations match the CRD schema")


def artifacthub():
    (chart,) = docs(ROOT / "charts" / "keyrotor" / "Chart.yaml")
    examples = yaml.safe_load(chart["annotations"]["artifacthub.io/crdsExamples"])
    (rotation,) = docs(ROOT / "examples" / "rotation.yaml")
    if examples != [rotation]:
        fail("Chart.yaml artifacthub.io/crdsExamples differs from examples/rotation.yaml")
    crds = yaml.safe_load(chart["annotations"]["artifacthub.io/crds"])
    (crd,) = docs(CRD)
    want = {"kind": crd["spec"]["names"]["kind"], "version": crd["spec"]["versions"][0]["name"], "name": crd["metadata"]["name"]}
    if [{k: c[k] for k in want} for c in crds] != [want]:
        fail(f"Chart.yaml artifacthub.io/crds does not name {want}")


# Where users read an image name: each `image:` naming a keyrotor image there
# must be one of Cargo.toml's, `<image>:<version>` or `<sidecar-image>:<version>`
# (tests use their own images).
IMAGE_TEXTS = ["README.md", "charts", "deploy", "docs", "examples", "go/README.md",
               "java/README.md", "python/README.md", "typescript/README.md"]
IMAGE_LINE = re.compile(r"""image:\s*["']?([^\s"']+)""")


def image_names():
    """One place names the image: Cargo.toml ([package.metadata.keyrotor]
    image, the package version; .ci/image tags its archive so)."""
    import tomllib

    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    meta, version = package["metadata"]["keyrotor"], package["version"]
    image = meta["image"]
    ref = f"{image}:{version}"
    refs = {ref, f"{meta['sidecar-image']}:{version}"}
    (values,) = docs(ROOT / "charts" / "keyrotor" / "values.yaml")
    if values["image"]["repository"] != image or values["image"]["tag"] != "":
        fail(f"values.yaml image is {values['image']}, not repository {image} with an empty tag (Cargo.toml)")
    (chart,) = docs(ROOT / "charts" / "keyrotor" / "Chart.yaml")
    if chart["appVersion"] != version:
        fail(f"Chart.yaml appVersion {chart['appVersion']} is not Cargo.toml's version {version}")
    listed = [i["image"] for i in yaml.safe_load(chart["annotations"]["artifacthub.io/images"])]
    if listed != [ref]:
        fail(f"Chart.yaml artifacthub.io/images lists {listed}, not [{ref}]")
    wrong = []
    for top in IMAGE_TEXTS:
        path = ROOT / top
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if not f.is_file() or f.suffix not in (".md", ".yaml", ".yml", ".tpl", ".txt"):
                continue
            for n, line in enumerate(f.read_text().splitlines(), 1):
                for name in IMAGE_LINE.findall(line):
                    if name.rsplit("/", 1)[-1].startswith("keyrotor") and name not in refs:
                        wrong.append(f"{f.relative_to(ROOT)}:{n}: {name}")
    if wrong:
        fail(f"these name another image than {' or '.join(sorted(refs))} (Cargo.toml):\n  "
             + "\n  ".join(wrong))


def values_docs():
    path = ROOT / "charts" / "keyrotor" / "values.yaml"
    undocumented = []
    stack = []  # (indent, documented)
    previous = ""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            previous = ""
            continue
        if stripped.startswith("#"):
            # A `# --` comment may go on over several lines.
            if not previous.startswith("# --"):
                previous = stripped
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("- ") or ":" not in stripped:
            previous = ""
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = previous.startswith("# --") or any(d for _, d in stack)
        key = stripped.split(":", 1)[0]
        leaf = stripped.split(":", 1)[1].strip() != ""
        if leaf and not documented:
            undocumented.append(f"values.yaml:{n}: {key}")
        stack.append((indent, documented))
        previous = ""
    if undocumented:
        fail("values without a `# --` comment: " + ", ".join(undocumented))


MONITORING = ROOT / "charts" / "keyrotor" / "monitoring"
# The job and runbook address the source file names; the chart replaces them.
SOURCE_JOB = 'job="keyrotor-metrics"'
SOURCE_RUNBOOK = "https://git.example.com/platform/keyrotor/blob/main/docs/runbook.md"


def alerts(rendered_rule, rendered_dashboard, job, url):
    (source,) = docs(MONITORING / "alerts.yaml")
    (rule,) = [d for d in docs(rendered_rule) if d.get("kind") == "PrometheusRule"]
    expected = yaml.safe_load(
        (MONITORING / "alerts.yaml").read_text()
        .replace(SOURCE_JOB, f'job="{job}"')
        .replace(SOURCE_RUNBOOK, url))
    if rule["spec"] != expected:
        fail("the chart's PrometheusRule is not monitoring/alerts.yaml with the job and runbook replaced")
    rules = [r for g in source["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    if len(names) != len(set(names)):
        fail(f"alert names repeat: {names}")
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {m.group(1) for m in re.finditer(r"^#+ (\S+)\s*$", runbook, re.M)}
    tests = [t for f in sorted((ROOT / "tests" / "alerts").glob("*_test.yaml")) for t in docs(f)[0]["tests"]]
    checks = [c for t in tests for c in t.get("alert_rule_test", [])]
    for r in rules:
        name = r["alert"]
        if r["annotations"].get("runbook_url") != f"{SOURCE_RUNBOOK}#{name.lower()}":
            fail(f"{name}: runbook_url is not {SOURCE_RUNBOOK}#{name.lower()}")
        if name not in headings:
            fail(f"{name}: docs/runbook.md has no section (a heading `## {name}`)")
        if not r.get("labels", {}).get("severity"):
            fail(f"{name}: no severity label")
        mine = [c for c in checks if c["alertname"] == name]
        if not any(c.get("exp_alerts") for c in mine) or not any(not c.get("exp_alerts") for c in mine):
            fail(f"{name}: tests/alerts/ needs a case where it fires and one where it does not")
    values = yaml.safe_load((ROOT / "charts" / "keyrotor" / "values.yaml").read_text())
    defaults = values["prometheusRule"]["rules"]
    shipped = {r["alert"]: {"severity": r["labels"]["severity"], "for": r["for"]} for r in rules}
    if defaults != shipped:
        fail(f"values.yaml prometheusRule.rules is not each alert's severity and for in alerts.yaml: {defaults} vs {shipped}")
    spec_rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    if not any(f'job="{job}"' in r["expr"] for r in spec_rules):
        fail(f"prometheusRule.job={job} reached no expression")
    (cm,) = [d for d in docs(rendered_dashboard) if d.get("kind") == "ConfigMap"]
    if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
        fail("the dashboard ConfigMap lacks the label grafana_dashboard: \"1\"")
    if json.loads(cm["data"]["keyrotor.json"]) != json.loads((MONITORING / "dashboard.json").read_text()):
        fail("the dashboard ConfigMap is not monitoring/dashboard.json")
    print(f"packaging: {len(rules)} alerts, each with a runbook section and firing tests; "
          "the chart renders them and the dashboard as they are")


def main():
    cmd, *args = sys.argv[1:]
    {
        "crd-drift": crd_drift,
        "deploy-contract": deploy_contract,
        "examples-schema": examples_schema,
        "artifacthub": artifacthub,
        "values-docs": values_docs,
        "image-names": image_names,
        "alerts": alerts,
    }[cmd](*args)


if __name__ == "__main__":
    main()
