"""The verifier: accepted, retired and unknown keys, every digest compared,
no moment without an accepted key while kubelet swaps, usage for Traffic
mode."""

from __future__ import annotations

import hmac
import threading
import time

import keyrotor
from keyrotor import verifier as verifier_mod

from conftest import key_of, verifier_files


def open_verifier(volume, **kw):
    kw.setdefault("poll_interval", None)
    kw.setdefault("handshake", None)
    return keyrotor.Verifier(volume.root, **kw)


def test_an_accepted_key_is_its_version_and_anything_else_is_refused(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: key_of(4)}))
    with open_verifier(volume) as v:
        assert v.check(key_of(3)) == keyrotor.Check("accepted", 3)
        assert v.verify(key_of(4).encode()) == 4
        for wrong in [key_of(5), key_of(3) + "x", key_of(3)[:-1], "", None, " " + key_of(3),
                      "x" * 2000, "fake-test-key-v3-not-a-sécret", b"\xff" * 20]:
            assert v.check(wrong) == keyrotor.Check("unknown", None), repr(wrong)[:40]


def test_a_retired_version_is_told_apart_from_an_unknown_key_and_never_accepted(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: key_of(4)}))
    with open_verifier(volume) as v:
        volume.publish(verifier_files(8, {4: key_of(4), 5: key_of(5)}))
        v.refresh()
        assert v.check(key_of(3)) == keyrotor.Check("retired", 3)
        assert v.verify(key_of(3)) is None
        assert v.check(key_of(9)).outcome == "unknown"
        assert v.retired == {3}
        assert v.traffic().retired == {3: 2}


def test_a_version_accepted_again_after_a_rollback_is_no_longer_retired(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: key_of(4)}))
    with open_verifier(volume) as v:
        volume.publish(verifier_files(8, {4: key_of(4)}))
        v.refresh()
        volume.publish(verifier_files(9, {3: key_of(3), 4: key_of(4)}))
        v.refresh()
        assert v.check(key_of(3)) == keyrotor.Check("accepted", 3)
        assert v.retired == frozenset()


def test_only_the_last_few_retired_versions_are_remembered(volume):
    volume.publish(verifier_files(1, {1: key_of(1)}))
    with open_verifier(volume, retired_memory=2) as v:
        for n in range(2, 6):
            volume.publish(verifier_files(n, {n: key_of(n)}))
            v.refresh()
        assert v.retired == {3, 4}
        assert v.check(key_of(1)).outcome == "unknown"


def test_a_presented_key_is_compared_with_every_accepted_digest(volume, monkeypatch):
    volume.publish(verifier_files(7, {v: key_of(v) for v in range(1, 9)}))
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(verifier_mod.hmac, "compare_digest", counting)
    with open_verifier(volume) as v:
        assert v.verify(key_of(1)) == 1
        assert len(calls) == 8, "no early exit on the first version's match"


def test_a_value_that_cannot_be_a_key_is_refused_before_hashing(volume, monkeypatch):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    hashed = []
    real = verifier_mod.hashlib.sha256
    monkeypatch.setattr(verifier_mod.hashlib, "sha256", lambda b: hashed.append(1) or real(b))
    with open_verifier(volume) as v:
        for value in ["short", "a b c d e f g h i j", "k" * 1025, "tab\tinside-the-value", "é" * 20]:
            assert v.check(value).outcome == "unknown"
        assert hashed == []


def test_a_verifier_of_a_version_zero_accepts_it(volume):
    volume.publish(verifier_files(7, {0: key_of(0), 1: key_of(1)}))
    with open_verifier(volume) as v:
        assert v.verify(key_of(0)) == 0


def test_no_request_is_refused_while_kubelet_swaps_generations(volume):
    """A rotation n → n+1, 30 times: verifiers accept n, then n and n+1;
    the presenter moves to n+1; verifiers drop n. A client presenting the
    current key all along is never refused, whatever the swap's timing."""
    volume.publish(verifier_files(1, {1: key_of(1)}))
    state = {"current": 1, "acked": 1}
    refused, stop = [], threading.Event()
    with open_verifier(volume) as v:
        def client():
            while not stop.is_set():
                current = state["current"]
                if v.verify(key_of(current)) is None:
                    refused.append(current)
                state["acked"] = current
                time.sleep(0.0001)  # let the reloading thread have the GIL

        t = threading.Thread(target=client)
        t.start()
        try:
            for n in range(1, 31):
                volume.publish(verifier_files(2 * n, {n: key_of(n), n + 1: key_of(n + 1)}))
                v.refresh()
                state["current"] = n + 1
                for _ in range(10_000):  # the client moved on (bounded)
                    if state["acked"] == n + 1:
                        break
                    time.sleep(0.0005)
                volume.publish(verifier_files(2 * n + 1, {n + 1: key_of(n + 1)}))
                v.refresh()
        finally:
            stop.set()
            t.join(timeout=10)
        assert refused == []
        assert v.accepted == {31} and v.revision == 61


def test_usage_records_when_each_accepted_version_was_last_presented(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: key_of(4)}))
    with open_verifier(volume) as v:
        v.verify(key_of(3))
        v.verify(key_of(3))
        v.verify(key_of(5))
        assert set(v.last_seen()) == {3}
        assert v.traffic().accepted == {3: 2}
        volume.publish(verifier_files(8, {4: key_of(4)}))
        v.refresh()
        assert v.last_seen() == {}, "versions that left accepted are forgotten"
