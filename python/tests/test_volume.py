"""Reading a mounted Secret: one generation at a time, retries across
kubelet's swap, the error classes, and a failed reload that keeps the last
good snapshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import keyrotor
from keyrotor import volume as reader
from keyrotor.store import KeyStore

from conftest import key_of, presenter_files, verifier_files


def test_a_swap_during_a_read_is_read_again_from_the_new_generation(volume, monkeypatch):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    new = volume.publish(verifier_files(8, {3: key_of(3), 4: key_of(4)}), keep_old=True)
    real = os.readlink
    answers = iter(["..2026_03_01_10_00_00.000000001", new])  # before / after of the first attempt

    def swapping(path):
        return next(answers, None) or real(path)

    monkeypatch.setattr(reader.os, "readlink", swapping)
    snap = keyrotor.load(volume.root)
    assert snap.revision == 8 and snap.accepted == {3, 4} and snap.generation == new


def test_a_volume_that_keeps_changing_fails_as_unstable_after_five_reads(volume, monkeypatch):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    calls = []

    def always_new(path):
        calls.append(path)
        return f"..gen{len(calls)}"

    monkeypatch.setattr(reader.os, "readlink", always_new)
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert e.value.error_class == "unstable"
    assert len(calls) == 2 * reader.READ_ATTEMPTS


def test_an_unreadable_file_is_an_io_error_naming_the_file(volume):
    if os.geteuid() == 0:
        # root reads anything: make the file a directory instead
        gen = volume.publish(verifier_files(7, {3: key_of(3)}))
        os.unlink(volume.root / gen / "revision")
        os.mkdir(volume.root / gen / "revision")
    else:
        gen = volume.publish(verifier_files(7, {3: key_of(3)}))
        os.chmod(volume.root / gen / "revision", 0)
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert e.value.error_class == "io"
    assert e.value.file.endswith("revision")


def test_a_fifo_in_the_volume_is_refused_without_blocking(volume):
    gen = volume.publish(verifier_files(7, {3: key_of(3)}))
    os.unlink(volume.root / gen / "v3.sha256")
    os.mkfifo(volume.root / gen / "v3.sha256")
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert e.value.error_class == "io"


def test_a_mount_point_that_is_a_file_is_an_io_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(tmp_path / "file")
    assert e.value.error_class == "io"


def test_a_file_over_its_cap_is_refused_without_being_read_whole(volume, monkeypatch):
    gen = volume.publish(verifier_files(7, {3: key_of(3)}))
    (volume.root / gen / "accepted").write_bytes(b"3," * 10_000_000)  # 20 MB
    reads = []
    real = os.read

    def counting(fd, n):
        chunk = real(fd, n)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(reader.os, "read", counting)
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.load(volume.root)
    assert e.value.error_class == "malformed"
    assert sum(reads) <= reader.MAX_TEXT_FILE + 1 + 100  # and the small files before it


def test_a_verifier_keeps_the_last_good_snapshot_when_a_reload_fails(volume):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with KeyStore(volume.root, poll_interval=None, handshake=None) as store:
        bad = verifier_files(8, {3: key_of(3), 4: key_of(4)})
        bad["v4.sha256"] = "not hex"
        volume.publish(bad)
        with pytest.raises(keyrotor.VolumeError) as e:
            store.refresh()
        assert e.value.error_class == "malformed" and e.value.file.endswith("v4.sha256")
        assert store.snapshot.revision == 7
        volume.publish(verifier_files(9, {4: key_of(4)}))
        assert store.refresh().revision == 9


def test_a_volume_that_disappears_after_a_good_load_keeps_serving(volume, caplog):
    volume.publish(verifier_files(7, {3: key_of(3)}))
    with keyrotor.Verifier(volume.root, poll_interval=None, handshake=None) as verifier:
        shutil.rmtree(volume.root)
        verifier.store.tick()
        assert verifier.verify(key_of(3)) == 3
        assert "still serving revision 7" in caplog.text and "(missing)" in caplog.text
        verifier.store.tick()
        assert caplog.text.count("still serving") == 1, "a lasting problem is logged once"


def test_the_first_load_fails_the_process_with_the_error_class(tmp_path):
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.Verifier(tmp_path / "nothing", poll_interval=None, handshake=None)
    assert e.value.error_class == "missing"


def test_a_plain_directory_is_reloaded_when_its_files_change(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    for name, text in presenter_files(1, 3, key_of(3)).items():
        (d / name).write_text(text)
    with keyrotor.Presenter(d, poll_interval=None, handshake=None) as presenter:
        assert presenter.refresh() is None, "nothing changed"
        (d / "key").write_text(key_of(4))
        (d / "version").write_text("4")
        assert presenter.refresh() is not None
        assert presenter.current()[0] == 4 and presenter.key().expose() == key_of(4)


def test_the_key_comes_with_the_user_name_of_its_version_across_swaps(volume):
    volume.publish(presenter_files(1, 3, key_of(3), username="app_blue"))
    with keyrotor.Presenter(volume.root, poll_interval=None, handshake=None) as presenter:
        assert presenter.presented() == (3, presenter.key(), "app_blue")
        volume.publish(presenter_files(2, 4, key_of(4), username="app_green\n"))
        presenter.refresh()
        version, key, username = presenter.presented()
        assert (version, key.expose(), username) == (4, key_of(4), "app_green")
        volume.publish(presenter_files(3, 5, key_of(5)))
        presenter.refresh()
        assert presenter.presented().username is None and presenter.username is None


def test_a_malformed_user_name_keeps_the_last_good_key_and_user_name(volume):
    volume.publish(presenter_files(1, 3, key_of(3), username="app_blue"))
    with keyrotor.Presenter(volume.root, poll_interval=None, handshake=None) as presenter:
        volume.publish(presenter_files(2, 4, key_of(4), username="app green"))
        with pytest.raises(keyrotor.VolumeError) as e:
            presenter.refresh()
        assert e.value.error_class == "malformed" and e.value.file.endswith("/username")
        assert "app green" not in str(e.value)
        version, key, username = presenter.presented()
        assert (version, key.expose(), username) == (3, key_of(3), "app_blue")


def test_a_verifier_on_a_presenter_secret_is_refused_at_once(volume):
    volume.publish(presenter_files(1, 3, key_of(3)))
    with pytest.raises(keyrotor.VolumeError) as e:
        keyrotor.Verifier(volume.root, poll_interval=None, handshake=None)
    assert e.value.error_class == "malformed" and e.value.file.endswith("role")


def test_the_poller_follows_kubelets_swaps_in_the_background(volume):
    volume.publish(presenter_files(1, 3, key_of(3)))
    with keyrotor.Presenter(volume.root, poll_interval=0.02, handshake=None) as presenter:
        volume.publish(presenter_files(2, 4, key_of(4)))
        for _ in range(250):  # at most 5 s
            if presenter.version == 4:
                break
            time.sleep(0.02)
        assert presenter.version == 4 and presenter.key().expose() == key_of(4)


def test_the_poller_thread_never_keeps_the_process_alive(volume):
    volume.publish(presenter_files(1, 3, key_of(3)))
    script = (
        "import keyrotor, sys\n"
        "p = keyrotor.Presenter(sys.argv[1], poll_interval=0.05, handshake=None)\n"
        "print(p.version)\n"  # and exits without closing it
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(keyrotor.__file__)))
    done = subprocess.run([sys.executable, "-c", script, str(volume.root)], env=env,
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and done.stdout.strip() == "3"
