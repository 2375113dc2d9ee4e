"""Shared helpers: materialized key directories in temporary folders."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent.parent.parent / "tests" / "wire"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Volume:
    """A directory laid out as kubelet mounts a Secret, that can be swapped
    to new contents the way kubelet does it."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.count = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, files: dict, *, keep_old: bool = False) -> str:
        """kubelet's AtomicWriter: new directory, ``..data_tmp``, rename,
        visible links, old directory removed."""
        self.count += 1
        gen = f"..2026_03_01_10_00_00.{self.count:09d}"
        (self.root / gen).mkdir()
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode()
            (self.root / gen / name).write_bytes(data)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        os.symlink(gen, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        for link in self.root.iterdir():
            if link.is_symlink() and link.name not in files and not link.name.startswith(".."):
                link.unlink()
        if old and not keep_old:
            for f in (self.root / old).iterdir():
                f.unlink()
            (self.root / old).rmdir()
        return gen


def verifier_files(revision: int, keys: dict, rotation: str = "orders") -> dict:
    files = {
        "rotation": rotation,
        "role": "verifier",
        "revision": str(revision),
        "accepted": ",".join(str(v) for v in sorted(keys)),
    }
    for v, key in keys.items():
        files[f"v{v}.sha256"] = digest(key)
    return files


def presenter_files(revision: int, version: int, key: str, rotation: str = "orders",
                    username: str = None) -> dict:
    files = {"rotation": rotation, "role": "presenter", "revision": str(revision),
             "version": str(version), "key": key}
    if username is not None:
        files["username"] = username
    return files


def key_of(version: int) -> str:
    return f"fake-test-key-v{version}-not-a-secret"


@pytest.fixture
def volume(tmp_path):
    return Volume(tmp_path / "volume")


@pytest.fixture
def handshake_dir(tmp_path):
    d = tmp_path / "handshake"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def no_env_handshake(monkeypatch):
    monkeypatch.delenv("KEYROTOR_HANDSHAKE_DIR", raising=False)


def pytest_sessionstart(session):
    """Under ci, the tests must exercise the installed wheel, not the sources."""
    if os.environ.get("KEYROTOR_TEST_INSTALLED"):
        import sys

        import keyrotor

        where = pathlib.Path(keyrotor.__file__).resolve()
        assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), f"keyrotor from {where}"
