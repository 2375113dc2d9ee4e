"""Secrets stay secret: no key, presented value or digest in repr, str,
JSON, pickles, exceptions or logs."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import shutil

import pytest

import keyrotor
from keyrotor import SecretKey

from conftest import digest, key_of, presenter_files, verifier_files

KEY = key_of(4)


def all_text(*objects) -> str:
    return "\n".join(f"{o!r} {o!s} {o}" for o in objects)


def test_a_loaded_key_never_shows_itself(volume):
    volume.publish(presenter_files(9, 4, KEY))
    with keyrotor.Presenter(volume.root, poll_interval=None, handshake=None) as p:
        key = p.key()
        shown = all_text(key, p, p.snapshot, p.store, p.current(), [key], {"k": key}) + f"{key:>40}"
        assert KEY not in shown and "redacted" in shown
        with pytest.raises(TypeError):
            json.dumps({"key": key})
        with pytest.raises(TypeError):
            pickle.dumps(key)
        assert copy.deepcopy(key) == key
        assert key.expose() == KEY


def test_the_user_name_may_show_but_the_key_beside_it_never_does(volume):
    volume.publish(presenter_files(9, 4, KEY, username="app_blue"))
    with keyrotor.Presenter(volume.root, poll_interval=None, handshake=None) as p:
        shown = all_text(p, p.snapshot, p.presented(), p.snapshot.presented)
        assert KEY not in shown
        assert "username='app_blue'" in shown and "version=4" in shown


def test_a_verifier_shows_versions_never_digests(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: KEY}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=None) as v:
        volume.publish(verifier_files(8, {4: KEY}))
        v.refresh()
        shown = all_text(v, v.snapshot, v.store, v.check(KEY), v.check(key_of(3)))
        for secret in (KEY, key_of(3), digest(KEY), digest(key_of(3))):
            assert secret not in shown
        assert "accepted=[4]" in shown and "retired=[3]" in shown


@pytest.mark.parametrize("bad", ["key-with-a-space inside it", "short", "x" * 1025])
def test_an_error_about_a_malformed_key_file_names_the_file_not_the_key(volume, bad):
    volume.publish(presenter_files(9, 4, bad))
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.Presenter(volume.root, poll_interval=None, handshake=None)
    text = all_text(e.value, e.value.args) + str(e.value.__cause__) + str(e.value.__context__)
    assert bad not in text and bad[:12] not in text
    assert e.value.file.endswith("/key") and e.value.error_class == "malformed"


def test_an_error_about_a_malformed_digest_does_not_quote_it(volume):
    files = verifier_files(7, {3: key_of(3)})
    files["v3.sha256"] = digest(key_of(3))[:63]
    volume.publish(files)
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert digest(key_of(3))[:20] not in all_text(e.value)


def test_a_non_utf8_file_error_does_not_show_its_bytes(volume):
    files = presenter_files(9, 4, KEY)
    files["revision"] = b"\xfe\xfd secret-ish bytes"
    volume.publish(files)
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert "secret-ish" not in all_text(e.value) and "xfe" not in all_text(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_nothing_of_a_presented_key_is_logged_while_verifying(volume, caplog):
    volume.publish(verifier_files(7, {3: key_of(3), 4: KEY}))
    caplog.set_level(logging.DEBUG)
    wrong = "fake-test-key-v4-not-a-secreT"
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=None) as v:
        for presented in (wrong, KEY, key_of(9), wrong.encode(), "é" * 30):
            v.check(presented)
        shutil.rmtree(volume.root)  # and a reload failure on top
        v.store.tick()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "still serving" in logged
    for secret in (wrong, KEY, digest(KEY), "not-a-secre"):
        assert secret not in logged


def test_a_secret_key_refuses_what_cannot_be_a_key():
    for bad in [b"short", b"with space inside!", b"\x00" * 20, b"k" * 1025]:
        with pytest.raises(ValueError) as e:
            SecretKey(bad)
        assert bad.decode("latin-1") not in str(e.value)
