"""keyrotor's release, the steps the release workflow
(.github/workflows/release.yml) and .ci/check-release share. Everything a
release names is read from the repository: Cargo.toml (version, repository,
[package.metadata.keyrotor]: the images and the chart's OCI repository), the
chart's Chart.yaml, .ci/tools (Helm's version), CHANGELOG.md.

    release.py meta                      KEY=VALUE lines (for $GITHUB_OUTPUT): version, tag,
                                         image, sidecar_image, registry, chart, chart_repository,
                                         repository_url, github_repository, helm_version
    release.py check-tag TAG [--github-repository OWNER/NAME]
                                         TAG is v<version>; every workspace crate, the chart's
                                         version and appVersion say that version; CHANGELOG.md
                                         has its section; the repository is Cargo.toml's; then meta
    release.py oci-index [--revision COMMIT] LAYOUT ARCHIVE...
                                         one OCI layout whose index (tagged <version>) lists each
                                         per-arch archive of .ci/image (built from COMMIT); prints
                                         reference=, index=sha256:..., <os>_<arch>=sha256:... each
    release.py krew OUT [--archive FILE]... [--dummy-sha256]
                                         .ci/krew/keyrotor.yaml filled with the tag and each
                                         platform's archive sha256 (.ci/plugin-archive), checked
    release.py names FILE...             the files name no image, registry, repository, chart
                                         repository, version or Helm version: they read them here
    release.py workflows --rustc "$(rustc --version)" WORKFLOW...
                                         every job states its permissions and writes only what
                                         WRITES allows; actions pinned by commit; RUST_TOOLCHAIN is
                                         the tested rustc (and the Dockerfile's); meta has the keys read
    release.py docs FILE...              the chart, download URLs, signing identity and versions the
                                         docs show are this release's

The standard library only, but for `krew` and `workflows` (PyYAML), so
the workflow's jobs run it with the runner's python3.
"""

import argparse
import hashlib
import json
import pathlib
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "keyrotor" / "Chart.yaml"
KREW_TEMPLATE = ROOT / ".ci" / "krew" / "keyrotor.yaml"
PLUGIN_BINARY = "kubectl-keyrotor"
SEMVER = r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?"


def fail(msg):
    print(f"release: {msg}", file=sys.stderr)
    sys.exit(1)


def chart_field(name):
    """A top-level scalar of Chart.yaml (read without a YAML parser)."""
    match = re.search(rf"^{name}:\s*\"?([^\"\n]+?)\"?\s*$", CHART.read_text(), re.M)
    if not match:
        fail(f"{CHART.relative_to(ROOT)} has no {name}")
    return match.group(1)


def meta():
    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    names = package["metadata"]["keyrotor"]
    version, url = package["version"], package["repository"].rstrip("/")
    github = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url)
    if not github:
        fail(f"Cargo.toml's repository {url} is not https://github.com/OWNER/NAME")
    image, sidecar, charts = names["image"], names["sidecar-image"], names["chart-repository"]
    registry = image.split("/", 1)[0]
    if sidecar.split("/", 1)[0] != registry or not charts.startswith(f"oci://{registry}/"):
        fail(f"Cargo.toml names images and the chart repository in more than one registry: {image}, {sidecar}, {charts}")
    helm = re.search(r'^HELM_VERSION="(v[\d.]+)"$', (ROOT / ".ci" / "tools").read_text(), re.M)
    if not helm:
        fail(".ci/tools has no HELM_VERSION=\"vX.Y.Z\"")
    return {
        "version": version, "tag": f"v{version}", "image": image, "sidecar_image": sidecar,
        "registry": registry, "chart": chart_field("name"), "chart_repository": charts,
        "repository_url": url, "github_repository": github.group(1), "helm_version": helm.group(1),
    }


def print_meta(m):
    for key, value in m.items():
        print(f"{key}={value}")


def check_tag(tag, github_repository):
    m = meta()
    version = m["version"]
    if tag != m["tag"]:
        fail(f"the tag {tag} is not v + Cargo.toml's version ({m['tag']})")
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    for member in workspace:
        crate = tomllib.loads((ROOT / member / "Cargo.toml").read_text())["package"]
        if crate["version"] != version:
            fail(f"{member}/Cargo.toml says {crate['name']} {crate['version']}, not {version}")
    for field in ("version", "appVersion"):
        if chart_field(field) != version:
            fail(f"Chart.yaml {field} is {chart_field(field)}, not {version}")
    notes = subprocess.run([ROOT / ".ci" / "changelog-section", version], stdout=subprocess.DEVNULL)
    if notes.returncode != 0:
        fail(f"CHANGELOG.md has no usable section for {version} (above)")
    if github_repository and github_repository.lower() != m["github_repository"].lower():
        fail(f"this runs in {github_repository}, but Cargo.toml's repository is {m['github_repository']}")
    owner = m["github_repository"].split("/")[0].lower()
    if m["registry"] == "ghcr.io" and m["image"].split("/")[1] != owner:
        fail(f"{m['image']} is not under ghcr.io/{owner}: the workflow's token can push only there")
    print_meta(m)


def archive_manifest(archive):
    """The one manifest of a .ci/image archive: its descriptor, reference,
    the config's labels, and the archive's blobs by digest."""
    with tarfile.open(archive) as tar:
        blobs = {m.name.removeprefix("blobs/sha256/"): tar.extractfile(m).read()
                 for m in tar.getmembers() if m.isfile() and m.name.startswith("blobs/sha256/")}
        index = json.load(tar.extractfile("index.json"))
    for digest, data in blobs.items():
        if hashlib.sha256(data).hexdigest() != digest:
            fail(f"{archive}: blob {digest} does not match its digest")
    if len(index["manifests"]) != 1:
        fail(f"{archive}: expected one manifest, found {len(index['manifests'])}")
    (desc,) = index["manifests"]
    if "platform" not in desc:
        fail(f"{archive}: its manifest names no platform")
    manifest = json.loads(blobs[desc["digest"].removeprefix("sha256:")])
    config = json.loads(blobs[manifest["config"]["digest"].removeprefix("sha256:")])
    if (config["os"], config["architecture"]) != (desc["platform"]["os"], desc["platform"]["architecture"]):
        fail(f"{archive}: the index says {desc['platform']}, the config {config['os']}/{config['architecture']}")
    ref = desc["annotations"]["org.opencontainers.image.ref.name"]
    return desc, ref, config["config"].get("Labels", {}), blobs


def oci_index(layout, archives, revision=None):
    """Writes LAYOUT, an OCI layout holding every archive's image under one
    index tagged with their version: `skopeo copy --all` pushes each
    manifest by digest, then the index under the tag, all digests as here.
    With REVISION, every image must be labelled with that commit."""
    layout = pathlib.Path(layout)
    if layout.exists():
        shutil.rmtree(layout)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    entries, refs, labels = [], set(), None
    for archive in archives:
        desc, ref, config_labels, blobs = archive_manifest(archive)
        refs.add(ref)
        built = config_labels.get("org.opencontainers.image.revision")
        if revision and built != revision:
            fail(f"{archive} was built from {built}, not {revision}")
        common = {k: v for k, v in config_labels.items() if k.startswith("org.opencontainers.image.")}
        labels = common if labels is None else {k: v for k, v in labels.items() if common.get(k) == v}
        for digest, data in blobs.items():
            (layout / "blobs" / "sha256" / digest).write_bytes(data)
        entries.append({k: desc[k] for k in ("mediaType", "digest", "size", "platform")})
    if len(refs) != 1:
        fail(f"the archives name different images: {sorted(refs)}")
    platforms = [f"{e['platform']['os']}/{e['platform']['architecture']}" for e in entries]
    if len(set(platforms)) != len(platforms):
        fail(f"two archives are for the same platform: {platforms}")
    entries.sort(key=lambda e: (e["platform"]["os"], e["platform"]["architecture"]))
    # The index's annotations carry the labels every image shares (source,
    # version, licenses, description): registries show them for the tag.
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": entries, "annotations": dict(sorted(labels.items()))}
    data = json.dumps(index, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    (ref,) = refs
    repository, tag = ref.rsplit(":", 1)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": index["mediaType"], "digest": f"sha256:{digest}", "size": len(data),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}, separators=(",", ":")))
    print(f"reference={repository}:{tag}")
    print(f"repository={repository}")
    print(f"tag={tag}")
    print(f"index=sha256:{digest}")
    for e in entries:
        print(f"{e['platform']['os']}_{e['platform']['architecture']}={e['digest']}")


def plugin_archives(paths, m):
    """(os, arch) -> (file name, sha256, members) of each plugin archive."""
    found = {}
    for path in map(pathlib.Path, paths):
        match = re.fullmatch(rf"{PLUGIN_BINARY}_{re.escape(m['tag'])}_([a-z0-9]+)_([a-z0-9]+)\.tar\.gz", path.name)
        if not match:
            fail(f"{path.name} is not {PLUGIN_BINARY}_{m['tag']}_<os>_<arch>.tar.gz (.ci/plugin-archive)")
        with tarfile.open(path) as tar:
            members = {t.name: t for t in tar.getmembers()}
        found[match.groups()] = (path.name, hashlib.sha256(path.read_bytes()).hexdigest(), members)
    return found


def krew(out, paths, dummy):
    import yaml

    m = meta()
    archives = plugin_archives(paths, m)
    template = string.Template(KREW_TEMPLATE.read_text())
    values = {"tag": m["tag"], "repository_url": m["repository_url"]}
    for name in template.get_identifiers():
        if name in values:
            continue
        match = re.fullmatch(r"sha256_([a-z0-9]+)_([a-z0-9]+)", name)
        if not match:
            fail(f"{KREW_TEMPLATE.relative_to(ROOT)} names ${{{name}}}, which this script does not fill")
        if match.groups() in archives:
            values[name] = archives[match.groups()][1]
        elif dummy:
            values[name] = hashlib.sha256(f"dummy {name}".encode()).hexdigest()
        else:
            fail(f"no archive for ${{{name}}} (the workflow builds none for {'/'.join(match.groups())})")
    try:
        text = template.substitute(values)
    except ValueError as e:
        fail(f"{KREW_TEMPLATE.relative_to(ROOT)}: {e} (a $ not followed by a name: write $$)")
    check_krew(yaml.safe_load(text), m, archives, dummy)
    pathlib.Path(out).write_text(text)
    print(f"release: krew manifest {out}: {len(archives)} archive(s) checked"
          + (", dummy sha256 for the others" if dummy else ""), file=sys.stderr)


def check_krew(plugin, m, archives, dummy):
    """What krew refuses (its index validation), and what this release
    promises: every platform's archive is the one the release attaches."""
    want = {"apiVersion": "krew.googlecontainertools.github.com/v1alpha2", "kind": "Plugin"}
    for key, value in want.items():
        if plugin.get(key) != value:
            fail(f"krew manifest: {key} is {plugin.get(key)!r}, not {value}")
    name, spec = plugin["metadata"]["name"], plugin["spec"]
    if name != PLUGIN_BINARY.removeprefix("kubectl-") or not re.fullmatch(r"[\w-]+", name):
        fail(f"krew manifest: the plugin is named {name!r}, not the binary's {PLUGIN_BINARY} without kubectl-")
    if spec.get("version") != m["tag"] or not re.fullmatch(f"v{SEMVER}", spec["version"]):
        fail(f"krew manifest: version {spec.get('version')!r} is not {m['tag']} (krew wants v + semver)")
    if spec.get("homepage") != m["repository_url"]:
        fail(f"krew manifest: homepage {spec.get('homepage')!r} is not {m['repository_url']}")
    short = spec.get("shortDescription") or ""
    if not short or "\n" in short or "\r" in short:
        fail("krew manifest: shortDescription must be one non-empty line")
    if not (spec.get("description") or "").strip():
        fail("krew manifest: description is empty")
    platforms = spec.get("platforms") or []
    if not platforms:
        fail("krew manifest: no platforms")
    seen = set()
    for p in platforms:
        seen.add(check_platform(p, m, archives, seen))
    missing = set(archives) - seen
    if missing:
        fail(f"krew manifest: no platform for the archive(s) {sorted(missing)}")
    if not dummy and seen != set(archives):
        fail(f"krew manifest: platforms {sorted(seen)} but archives {sorted(archives)}")


def check_platform(p, m, archives, seen):
    labels = (p.get("selector") or {}).get("matchLabels") or {}
    if set(labels) != {"os", "arch"} or set(p["selector"]) != {"matchLabels"}:
        fail(f"krew manifest: a platform's selector is {p.get('selector')}, not matchLabels os and arch")
    key = (labels["os"], labels["arch"])
    if key in seen:
        fail(f"krew manifest: {key} is listed twice")
    name = f"{PLUGIN_BINARY}_{m['tag']}_{key[0]}_{key[1]}.tar.gz"
    uri = f"{m['repository_url']}/releases/download/{m['tag']}/{name}"
    if p.get("uri") != uri:
        fail(f"krew manifest: {key} downloads {p.get('uri')}, not the release's {uri}")
    if not re.fullmatch(r"[a-f0-9]{64}", str(p.get("sha256", ""))):
        fail(f"krew manifest: {key} sha256 {p.get('sha256')!r} is not 64 lower-case hex digits")
    if key in archives and p["sha256"] != archives[key][1]:
        fail(f"krew manifest: {key} sha256 is not {archives[key][0]}'s")
    files = p.get("files")
    if not files or any(not f.get("from") or not f.get("to") for f in files):
        fail(f"krew manifest: {key} files must list from and to")
    if p.get("bin") != PLUGIN_BINARY or not any(f["from"] == PLUGIN_BINARY and f["to"] == "." for f in files):
        fail(f"krew manifest: {key} bin must be {PLUGIN_BINARY}, copied from the archive to .")
    if key in archives:
        members = archives[key][2]
        absent = [f["from"] for f in files if f["from"] not in members]
        if absent:
            fail(f"krew manifest: {archives[key][0]} lacks {absent}")
        if not members[PLUGIN_BINARY].isfile() or not members[PLUGIN_BINARY].mode & 0o111:
            fail(f"krew manifest: {PLUGIN_BINARY} in {archives[key][0]} is not an executable file")
    return key


def names(files):
    """A release workflow reads names from here; a second copy would drift."""
    m = meta()
    banned = {m["version"]: "the version", m["image"]: "the image", m["sidecar_image"]: "the sidecar image",
              m["registry"]: "the registry", m["chart_repository"]: "the chart repository",
              m["github_repository"]: "the repository", m["helm_version"]: "Helm's version"}
    wrong = []
    for f in map(pathlib.Path, files):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for text, what in banned.items():
                if re.search(rf"(?<![\w.-]){re.escape(text)}(?![\w-]|\.\d)", line, re.I):
                    wrong.append(f"{f}:{n}: names {what} ({text}); read it from .ci/release.py meta")
    if wrong:
        fail("names written out instead of read from Cargo.toml, Chart.yaml or .ci/tools:\n  " + "\n  ".join(wrong))


# The only write permissions a workflow job may hold: pushing and signing
# (no repository write), and creating the release (nothing else).
WRITES = {("release.yml", "publish"): {"packages", "id-token"}, ("release.yml", "release"): {"contents"}}
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d[\w.-]*$")


def workflows(files, rustc):
    """What actionlint does not check: least privilege, actions pinned by
    commit, the job outputs `meta` provides, one Rust toolchain."""
    import yaml

    m = meta()
    tested = re.match(r"rustc (\d+\.\d+\.\d+)", rustc)
    if not tested:
        fail(f"cannot read a Rust version in {rustc!r}")
    docker = re.search(r"^ARG RUST_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    if not docker or not (tested.group(1) + ".").startswith(docker.group(1) + "."):
        fail(f"the Dockerfile's RUST_VERSION is not {tested.group(1)}'s release ({docker and docker.group(1)})")
    for f in map(pathlib.Path, files):
        text = f.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            if re.match(r"^\s*(- )?uses: ", line) and not line.strip().removeprefix("- ").startswith("uses: ./") \
                    and not PINNED.match(line):
                fail(f"{f}:{n}: an action not pinned by its full commit with the release in a comment: {line.strip()}")
        doc = yaml.safe_load(text)
        if "permissions" not in doc:
            fail(f"{f}: no top-level permissions (the default grants a job every write)")
        toolchain = (doc.get("env") or {}).get("RUST_TOOLCHAIN")
        for name, job in doc["jobs"].items():
            toolchain = toolchain or (job.get("env") or {}).get("RUST_TOOLCHAIN")
            if "permissions" not in job:
                fail(f"{f}: job {name} does not say which permissions it needs")
            writes = {k for k, v in (job["permissions"] or {}).items() if v == "write"}
            if not writes <= WRITES.get((f.name, name), set()):
                fail(f"{f}: job {name} may write {sorted(writes)}; only {sorted(WRITES.get((f.name, name), set()))}")
        if toolchain and toolchain != tested.group(1):
            fail(f"{f}: RUST_TOOLCHAIN {toolchain} is not the toolchain .ci/run tests with ({tested.group(1)})")
        unknown = set(re.findall(r"steps\.meta\.outputs\.(\w+)", text)) - set(m)
        if unknown:
            fail(f"{f}: reads {sorted(unknown)} from .ci/release.py meta, which prints no such key")


def docs(files):
    """Where the docs name what a release publishes, they name Cargo.toml's."""
    m = meta()
    chart = f"{m['chart_repository']}/{m['chart']}"
    # The upgrade scenario's image (.ci/previous-release) is the one other release the docs may name.
    previous = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["metadata"]["keyrotor"][
        "previous-release"]["version"]
    wrong = []
    for f in map(pathlib.Path, files):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for ref in re.findall(r"oci://[^\s`'\"]+", line):
                if ref != chart:
                    wrong.append(f"{f}:{n}: {ref} is not the chart, {chart}")
            for url in re.findall(r"https://github\.com/[^\s`'\"]+/releases/download/[^\s`'\"]+", line):
                if not url.startswith(f"{m['repository_url']}/releases/download/{m['tag']}/"):
                    wrong.append(f"{f}:{n}: {url} is not a download of {m['tag']} from {m['repository_url']}")
            # A signing identity, plain or as a regular expression (\. for .).
            plain = line.replace("\\", "")
            for repo, workflow, tag in re.findall(
                    r"github\.com/([\w.-]+/[\w.-]+)/\.github/workflows/([\w.-]+)@refs/tags/([\w.-]*)", plain):
                if (repo, workflow) != (m["github_repository"], "release.yml") or tag not in ("v", m["tag"]):
                    wrong.append(f"{f}:{n}: signing identity {repo}/.github/workflows/{workflow}@refs/tags/{tag}"
                                 f" is not {m['github_repository']}'s release.yml at v or {m['tag']}")
            for version in re.findall(r"--version[ =]([\w.-]+)", line):
                if version not in (m["version"], previous):
                    wrong.append(f"{f}:{n}: --version {version} is neither {m['version']}"
                                 f" nor the previous release, {previous}")
    if wrong:
        fail("the docs name another release than Cargo.toml's:\n  " + "\n  ".join(wrong))


def main():
    parser = argparse.ArgumentParser(prog=".ci/release.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("meta")
    p = sub.add_parser("check-tag")
    p.add_argument("tag")
    p.add_argument("--github-repository")
    p = sub.add_parser("oci-index")
    p.add_argument("--revision", help="the commit every image must be labelled with")
    p.add_argument("layout")
    p.add_argument("archives", nargs="+")
    p = sub.add_parser("krew")
    p.add_argument("out")
    p.add_argument("--archive", action="append", default=[])
    p.add_argument("--dummy-sha256", action="store_true")
    p = sub.add_parser("names")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("workflows")
    p.add_argument("--rustc", required=True, help="`rustc --version` of the toolchain .ci/run tests")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("docs")
    p.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "meta":
        print_meta(meta())
    elif args.command == "check-tag":
        check_tag(args.tag, args.github_repository)
    elif args.command == "oci-index":
        oci_index(args.layout, args.archives, args.revision)
    elif args.command == "krew":
        krew(args.out, args.archive, args.dummy_sha256)
    elif args.command == "names":
        names(args.files)
    elif args.command == "workflows":
        workflows(args.files, args.rustc)
    else:
        docs(args.files)


if __name__ == "__main__":
    main()
