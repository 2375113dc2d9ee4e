"""The example apps, as the e2e scenario will run them, on loopback: a
verifier server and a presenter client, each caching its key through the
library and confirming through its handshake directory, through rotations
driven the way the operator drives them (each step waits for the
confirmation of the one before). No request may be rejected."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import keyrotor

from conftest import Volume, key_of, presenter_files, verifier_files

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def confirmed(handshake: pathlib.Path, role: str, revision: int) -> bool:
    try:
        return int((handshake / f"orders.{role}-revision").read_text()) >= revision
    except (FileNotFoundError, ValueError):
        return False


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_the_example_apps_rotate_three_times_without_a_rejected_request(tmp_path):
    verifier_dir, presenter_dir = Volume(tmp_path / "verifier"), Volume(tmp_path / "presenter")
    hs_verifier, hs_presenter = tmp_path / "hs-verifier", tmp_path / "hs-presenter"
    hs_verifier.mkdir()
    hs_presenter.mkdir()
    verifier_dir.publish(verifier_files(1, {1: key_of(1)}))
    presenter_dir.publish(presenter_files(1, 1, key_of(1)))
    api_port, counts_port = free_port(), free_port()
    base = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(keyrotor.__file__)), POLL_SECONDS="0.1")
    api = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "verifier_server.py")],
        env=dict(base, KEY_DIR=str(verifier_dir.root), PORT=str(api_port), KEYROTOR_HANDSHAKE_DIR=str(hs_verifier)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = None
    try:
        wait_for("the verifier", lambda: confirmed(hs_verifier, "verifier", 1))
        wait_for("the API", lambda: _answers(f"http://127.0.0.1:{api_port}/healthz"))
        client = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "presenter_client.py")],
            env=dict(base, KEY_DIR=str(presenter_dir.root), PORT=str(counts_port), INTERVAL_MS="10",
                     TARGET_URL=f"http://127.0.0.1:{api_port}/", KEYROTOR_HANDSHAKE_DIR=str(hs_presenter)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        counts_url = f"http://127.0.0.1:{counts_port}/counts"
        wait_for("the client's counts", lambda: _answers(counts_url))
        rev = 1
        for n in range(1, 4):  # n -> n+1, as the operator does it
            rev += 1
            verifier_dir.publish(verifier_files(rev, {n: key_of(n), n + 1: key_of(n + 1)}))
            wait_for(f"verifiers accept {n + 1}", lambda: confirmed(hs_verifier, "verifier", rev))
            presenter_dir.publish(presenter_files(rev, n + 1, key_of(n + 1)))
            wait_for(f"presenters send {n + 1}", lambda: confirmed(hs_presenter, "presenter", rev))
            time.sleep(0.1)  # requests already under way with the old key land
            rev += 1
            verifier_dir.publish(verifier_files(rev, {n + 1: key_of(n + 1)}))
            wait_for(f"verifiers retire {n}", lambda: confirmed(hs_verifier, "verifier", rev))
        time.sleep(0.3)
        live = json.loads(get(counts_url))
        client.send_signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=20)
    finally:
        for p in (client, api):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=20)
    final = json.loads(out.strip().splitlines()[-1].split("counts: ", 1)[1])
    assert final["rejected"] == 0 and final["errors"] == 0, final
    assert final["ok"] >= live["ok"] > 20, final
    assert key_of(4) not in out


def _answers(url: str) -> bool:
    try:
        get(url)
        return True
    except OSError:
        return False
