"""Confirmation through the handshake directory: what the process loaded,
written atomically after it switched, only when it changed, never more than
every live process holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import keyrotor
from keyrotor import wire
from keyrotor.wire import Instant

from conftest import key_of, presenter_files, verifier_files


def files(d):
    return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")}


def test_a_verifier_writes_the_revision_it_loaded_and_again_after_each_reload(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        assert files(handshake_dir) == {"orders.verifier-revision": "7"}
        volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}))
        v.refresh()
        assert files(handshake_dir) == {"orders.verifier-revision": "8"}
    assert files(handshake_dir) == {}, "a closed store no longer claims anything"


def test_the_file_is_written_only_after_the_process_switched(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    seen = []
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        real = v.store.handshake.loaded

        def loaded(owner, rotation, role, revision):
            seen.append((revision, v.revision, v.verify(key_of(4))))
            real(owner, rotation, role, revision)

        v.store.handshake.loaded = loaded
        volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}))
        v.refresh()
    assert seen == [(8, 8, 4)]


def test_a_reload_that_fails_claims_nothing_new(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        bad = verifier_files(8, {3: key_of(3), 4: key_of(4)})
        del bad["v4.sha256"]
        volume.publish(bad)
        v.store.tick()
        assert files(handshake_dir) == {"orders.verifier-revision": "7"}


def test_a_steady_state_writes_nothing(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        main = handshake_dir / "orders.verifier-revision"
        before = os.stat(main).st_ino, os.stat(main).st_mtime_ns
        for _ in range(3):
            v.store.tick()
        v.store._announced_at = 0  # the periodic repair too
        v.store.tick()
        assert (os.stat(main).st_ino, os.stat(main).st_mtime_ns) == before


def test_a_removed_file_is_written_again_by_the_periodic_repair(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        (handshake_dir / "orders.verifier-revision").unlink()
        v.store._announced_at = 0
        v.store.tick()
        assert files(handshake_dir) == {"orders.verifier-revision": "7"}


def test_a_combined_secret_is_confirmed_under_both_roles(volume, handshake_dir):
    combined = {**verifier_files(5, {3: key_of(3), 4: key_of(4)}), **presenter_files(5, 4, key_of(4))}
    combined["role"] = "verifier,presenter"
    volume.publish(combined)
    with keyrotor.Presenter(volume.root, poll_interval=None, handshake=handshake_dir):
        assert files(handshake_dir) == {"orders.verifier-revision": "5", "orders.presenter-revision": "5"}


def test_files_left_by_a_stopped_process_are_removed_before_the_first_load(volume, handshake_dir):
    (handshake_dir / "orders.presenter-revision").write_text("99")
    (handshake_dir / "orders.verifier-revision").write_text("99")
    volume.publish(presenter_files(3, 4, key_of(4)))
    broken = presenter_files(4, 4, key_of(4))
    broken["key"] = "short"
    volume.publish(broken)
    with pytest.raises(keyrotor.VolumeError):
        keyrotor.Presenter(volume.root, poll_interval=None, handshake=handshake_dir)
    # This process loaded nothing: its role's file is gone, the other role's stays.
    assert files(handshake_dir) == {"orders.verifier-revision": "99"}


def test_the_handshake_directory_comes_from_the_environment(volume, handshake_dir, monkeypatch):
    monkeypatch.setenv("KEYROTOR_HANDSHAKE_DIR", str(handshake_dir))
    volume.publish(presenter_files(3, 4, key_of(4)))
    with keyrotor.Presenter(volume.root, poll_interval=None):
        assert files(handshake_dir) == {"orders.presenter-revision": "3"}


def test_a_directory_that_cannot_be_written_is_logged_and_serving_goes_on(volume, tmp_path, caplog):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    missing = tmp_path / "no-such-dir"
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=missing) as v:
        assert v.verify(key_of(3)) == 3
        v.store.tick()
    assert "cannot write the handshake files" in caplog.text and str(missing) in caplog.text
    assert caplog.text.count("cannot write the handshake files") == 1
    assert not missing.exists(), "no fallback: nothing is created elsewhere"


def test_the_file_says_the_lowest_revision_of_the_live_stores(volume, handshake_dir, tmp_path):
    """Two stores of one rotation in one process (or two worker processes):
    the file never claims more than the one that is behind."""
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as a:
        with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as b:
            volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}))
            a.refresh()
            assert files(handshake_dir) == {"orders.verifier-revision": "7"}, "b is still on 7"
            b.refresh()
            assert files(handshake_dir) == {"orders.verifier-revision": "8"}
        assert files(handshake_dir) == {"orders.verifier-revision": "8"}


def test_a_worker_process_that_stopped_no_longer_holds_the_revision_down(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    script = (
        "import keyrotor, sys\n"
        "keyrotor.Verifier(sys.argv[1], poll_interval=None, handshake=sys.argv[2])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(keyrotor.__file__)))
    subprocess.run([sys.executable, "-c", script, str(volume.root), str(handshake_dir)],
                   env=env, check=True, timeout=20)  # loads 7, exits without closing
    volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir):
        assert files(handshake_dir) == {"orders.verifier-revision": "8"}
        leftovers = [p.name for p in handshake_dir.iterdir() if ".proc-" in p.name]
        assert len(leftovers) == 1, leftovers


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_worker_announces_itself_and_follows_reloads(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=0.02, handshake=handshake_dir) as v:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: waits for the reload, reports what it verifies
            try:
                me = f"-{os.getpid()}-"
                for _ in range(500):
                    own = [p for p in os.listdir(handshake_dir) if ".proc-" in p and me in p]
                    if v.revision == 8 and own:
                        break
                    time.sleep(0.01)
                os.write(w, f"{v.verify(key_of(4))} {len(own)}".encode())
            finally:
                os._exit(0)
        os.close(w)
        volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}))
        answer = os.read(r, 100).decode()
        os.waitpid(pid, 0)
        os.close(r)
        assert answer == "4 1", "the child reloaded, and wrote its own file"


def test_last_seen_is_written_in_traffic_mode_within_its_caps(volume, handshake_dir):
    volume.publish(verifier_files(7, {v: key_of(v) for v in range(1, 4)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir,
                           last_seen=True, last_seen_interval=0) as v:
        v.store.tick()
        assert "orders.last-seen" not in files(handshake_dir), "the empty value is never written"
        v.verify(key_of(2))
        v.store.tick()
        text = files(handshake_dir)["orders.last-seen"]
        seen = wire.parse_last_seen(text)
        assert list(seen) == [2] and seen[2].nanos == 0
        assert abs(seen[2].seconds - time.time()) < 5


def test_last_seen_merges_processes_and_drops_versions_no_longer_accepted(handshake_dir):
    hs = keyrotor.Handshake(handshake_dir)
    hs.seen("orders", {3: Instant(100), 4: Instant(200)}, accepted=[3, 4])
    hs.seen("orders", {3: Instant(150), 4: Instant(50)}, accepted=[3, 4])
    assert files(handshake_dir)["orders.last-seen"] == (
        "3=1970-01-01T00:02:30Z,4=1970-01-01T00:03:20Z")
    hs.seen("orders", {4: Instant(300)}, accepted=[4])
    assert files(handshake_dir)["orders.last-seen"] == "4=1970-01-01T00:05:00Z"


def test_last_seen_keeps_the_newest_versions_within_the_entry_cap(handshake_dir):
    hs = keyrotor.Handshake(handshake_dir)
    versions = range(1, 301)
    hs.seen("orders", {v: Instant(1772359200) for v in versions}, accepted=versions)
    seen = wire.parse_last_seen(files(handshake_dir)["orders.last-seen"])
    assert len(seen) == 256 and min(seen) == 45


def test_a_rotation_name_that_cannot_be_a_file_name_is_refused(handshake_dir):
    hs = keyrotor.Handshake(handshake_dir)
    for bad in ["../escape", ".hidden", "a/b", ""]:
        with pytest.raises(ValueError):
            hs.loaded(1, bad, "verifier", 1)
    assert list(handshake_dir.iterdir()) == []


def test_no_temporary_file_is_left_behind(volume, handshake_dir):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=handshake_dir) as v:
        for rev in range(8, 12):
            volume.publish(verifier_files(rev, {3: key_of(3)}))
            v.refresh()
    assert [p.name for p in handshake_dir.iterdir() if ".tmp-" in p.name] == []
