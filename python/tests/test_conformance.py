"""The wire contract's fixtures (tests/wire/, specified in docs/wire.md)
against this library: every directory state materialized in a temporary
directory and read by the real reader, every annotation value through its
codec, the handshake file names. Each fixture file is one test; the last
test checks that every fixture file on disk ran and writes
``target/conformance/python.json``. A fixture that does not read, or that
did not run, is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import keyrotor
from keyrotor import wire
from keyrotor.wire import Instant, Nudge, Traffic

from conftest import FIXTURES

RESULT = FIXTURES.parent.parent / "target" / "conformance" / "python.json"
RESULTS: dict = {}


def fixture_ids(kind: str) -> list:
    return sorted(f"{kind}/{p.stem}" for p in (FIXTURES / kind).glob("*.json"))


ALL = fixture_ids("volumes") + fixture_ids("annotations") + fixture_ids("handshake")


def recorded(fixture_id: str):
    """Runs a fixture and records ``pass`` or ``fail`` for the result file."""

    def wrap(run):
        RESULTS[fixture_id] = "fail"
        run()
        RESULTS[fixture_id] = "pass"

    return wrap


def read(fixture_id: str) -> dict:
    return json.loads((FIXTURES / f"{fixture_id}.json").read_text(encoding="utf-8"))


def only_fields(obj: dict, allowed: set) -> None:
    """A misspelt section must fail, not silently test nothing."""
    unknown = set(obj) - allowed
    assert not unknown, f"unknown fields {sorted(unknown)}"


def content(v) -> bytes:
    """A string, or ``{text|hex, repeat, prefix, suffix}`` (tests/wire/README.md)."""
    if isinstance(v, str):
        return v.encode("utf-8")
    only_fields(v, {"text", "hex", "repeat", "prefix", "suffix", "path", "type"})
    assert ("text" in v) != ("hex" in v), "content needs one of text and hex"
    unit = v["text"].encode("utf-8") if "text" in v else bytes.fromhex(v["hex"])
    return v.get("prefix", "").encode() + unit * v.get("repeat", 1) + v.get("suffix", "").encode()


def text(v) -> str:
    return content(v).decode("utf-8")


# --- volumes -------------------------------------------------------------------------

def materialize(root: pathlib.Path, entries: list) -> None:
    root.mkdir(parents=True)
    for e in entries:
        path = root / e["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if e["type"] == "dir":
            only_fields(e, {"path", "type"})
            path.mkdir(parents=True, exist_ok=True)
        elif e["type"] == "file":
            path.write_bytes(content(e))
        elif e["type"] == "symlink":
            only_fields(e, {"path", "type", "target"})
            os.symlink(e["target"], path)
        else:
            raise AssertionError(f"unknown entry type {e['type']}")


def loaded(directory: pathlib.Path, want: dict) -> dict:
    """What this library's whole-directory reader concludes."""
    try:
        snap = keyrotor.load(directory)
    except keyrotor.VolumeError as e:
        return {"error": e.error_class}
    checks = []
    if want.get("checks"):
        with keyrotor.Verifier(directory, poll_interval=None, handshake=None) as verifier:
            for c in want["checks"]:
                check = verifier.check(c["key"])
                accepts = str(check.version) if check.accepted else None
                checks.append({"key": c["key"], "accepts": accepts})
    return {
        "rotation": snap.rotation,
        "roles": list(snap.meta.roles),
        "revision": str(snap.revision),
        "accepted": [str(v) for v in sorted(snap.accepted)],
        "current": None if snap.current is None else str(snap.current[0]),
        "currentKey": None if snap.current is None else snap.current[1].expose(),
        "username": snap.username,
        "generation": snap.generation,
        "checks": checks,
    }


def reported(directory: pathlib.Path) -> dict:
    """What a metadata reader (the sidecar without a handshake) concludes."""
    try:
        meta = keyrotor.load_meta(directory)
    except keyrotor.VolumeError as e:
        return {"error": e.error_class}
    return {"annotations": {wire.report_annotation(meta.rotation, r): str(meta.revision) for r in meta.roles}}


@pytest.mark.parametrize("fixture_id", fixture_ids("volumes"))
def test_every_volume_fixture_reads_as_it_says(fixture_id, tmp_path):
    @recorded(fixture_id)
    def run():
        doc = read(fixture_id)
        only_fields(doc, {"name", "description", "entries", "load", "report"})
        assert f"volumes/{doc['name']}" == fixture_id
        directory = tmp_path / "volume"
        if doc["entries"] is not None:
            materialize(directory, doc["entries"])
        want = doc["load"]
        if "error" not in want:
            want = {"username": None, **want}  # absent means null (tests/wire/README.md)
        assert loaded(directory, want) == want, "load"
        # The report is the sidecar's; its metadata reading is ours too.
        assert reported(directory) == doc["report"], "report"


# --- annotations ----------------------------------------------------------------------

def counts_json(m: dict) -> dict:
    return {str(v): str(n) for v, n in sorted(m.items())}


def traffic_json(t: Traffic) -> dict:
    client = None if t.client is None else wire.format_ip(t.client)
    return {"accepted": counts_json(t.accepted), "retired": counts_json(t.retired), "client": client}


def seen_json(seen: dict) -> dict:
    return {str(v): at.format() for v, at in sorted(seen.items())}


def _revision(t):
    r = wire.parse_revision_report(t)
    return str(r), wire.format_revision_report(r)


def _nudge(t):
    n = Nudge.parse(t)
    return {"revision": str(n.revision), "attempt": str(n.attempt), "at": n.at.format()}, n.format()


def _last_seen(t):
    s = wire.parse_last_seen(t)
    return seen_json(s), wire.format_last_seen(s)


def _last_seen_lenient(t):
    value, skipped = wire.parse_last_seen_lenient(t)
    return seen_json(value), skipped


def _traffic(t):
    v = Traffic.parse(t)
    return traffic_json(v), v.format()


def _traffic_lenient(t):
    value, skipped = Traffic.parse_lenient(t)
    return traffic_json(value), skipped


CODECS = {
    "annotations/revision-report": dict(
        name=wire.REVISION_REPORT, caps={"maxLength": wire.REVISION_REPORT_MAX_LEN},
        strict=_revision, lenient=None, key=lambda e: wire.report_annotation(e["rotation"], e["role"])),
    "annotations/nudge": dict(
        name=wire.NUDGE, caps={"maxLength": wire.NUDGE_MAX_LEN},
        strict=_nudge, lenient=None, key=lambda e: wire.nudge_annotation(e["rotation"])),
    "annotations/last-seen": dict(
        name=wire.LAST_SEEN,
        caps={"maxLength": wire.LAST_SEEN_MAX_LEN, "maxEntries": wire.LAST_SEEN_MAX_ENTRIES},
        strict=_last_seen, lenient=_last_seen_lenient,
        key=lambda e: wire.last_seen_annotation(e["rotation"])),
    "annotations/traffic": dict(
        name=wire.TRAFFIC, caps={"maxLength": wire.TRAFFIC_MAX_LEN, "maxCounts": wire.TRAFFIC_MAX_COUNTS},
        strict=_traffic, lenient=_traffic_lenient,
        key=lambda e: wire.traffic_annotation(e["rotation"])),
}


def error_class(read, t):
    try:
        read(t)
    except wire.WireError as e:
        return e.error_class
    return None


@pytest.mark.parametrize("fixture_id", fixture_ids("annotations"))
def test_every_annotation_fixture_reads_as_it_says(fixture_id):
    @recorded(fixture_id)
    def run():
        assert fixture_id in CODECS, f"no codec for {fixture_id}"
        codec = CODECS[fixture_id]
        doc = read(fixture_id)
        only_fields(doc, {"annotation", "key", "caps", "valid", "invalid", "lenient"})
        assert doc["annotation"] == codec["name"]
        assert doc["caps"] == codec["caps"]
        cases = 0
        for example in doc["key"]["examples"]:
            assert codec["key"](example) == example["key"]
            cases += 1
        for case in doc["valid"]:
            only_fields(case, {"name", "text", "value", "format"})
            value, written = codec["strict"](text(case["text"]))
            assert value == case["value"], case["name"]
            assert written == text(case["format"]), f"{case['name']}: written form"
            assert codec["strict"](written)[0] == case["value"], f"{case['name']}: again"
            cases += 1
        for case in doc["invalid"]:
            only_fields(case, {"name", "text", "error"})
            assert error_class(codec["strict"], text(case["text"])) == case["error"], case["name"]
            cases += 1
        for case in doc.get("lenient", []):
            only_fields(case, {"name", "text", "value", "skipped", "error"})
            assert codec["lenient"] is not None, f"{case['name']}: a lenient case for a strict-only codec"
            t = text(case["text"])
            if "error" in case:
                assert error_class(codec["lenient"], t) == case["error"], case["name"]
            else:
                assert codec["lenient"](t) == (case["value"], case["skipped"]), case["name"]
            cases += 1
        assert cases >= len(doc["valid"]) + len(doc["invalid"]) > 0


# --- handshake ------------------------------------------------------------------------

@pytest.mark.parametrize("fixture_id", fixture_ids("handshake"))
def test_every_handshake_fixture_names_the_files_the_library_writes(fixture_id, tmp_path):
    @recorded(fixture_id)
    def run():
        doc = read(fixture_id)
        only_fields(doc, {"description", "files", "reports"})
        assert doc["files"], "no file cases"
        for f in doc["files"]:
            only_fields(f, {"rotation", "role", "lastSeen", "name"})
            if f.get("lastSeen"):
                assert wire.last_seen_handshake_file(f["rotation"]) == f["name"]
                hs = keyrotor.Handshake(tmp_path)
                hs.seen(f["rotation"], {3: Instant(1772359200)}, [3])
            else:
                assert wire.revision_handshake_file(f["rotation"], f["role"]) == f["name"]
                keyrotor.Handshake(tmp_path).loaded(1, f["rotation"], f["role"], 8)
            # The library really writes that name (the sidecar reads nothing else).
            assert (tmp_path / f["name"]).is_file(), f["name"]
        visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        assert visible == sorted(f["name"] for f in doc["files"])
        # `reports` is the sidecar's side of the handshake.


def test_every_fixture_file_ran_and_the_result_file_is_written():
    """Last in this module: a fixture that did not run (or that a new
    fixture directory holds) is a failure."""
    assert len(ALL) > 0
    missing = [f for f in ALL if f not in RESULTS]
    results = {f: RESULTS.get(f, "fail") for f in ALL}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    doc = {"language": "python", "fixtures": results}
    RESULT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    kinds = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert kinds == {"volumes", "annotations", "handshake"}, f"fixture kinds: {sorted(kinds)}"
    assert not missing, f"fixtures that did not run: {missing}"
    failed = [f for f, r in results.items() if r != "pass"]
    assert not failed, f"fixtures that failed: {failed}"
