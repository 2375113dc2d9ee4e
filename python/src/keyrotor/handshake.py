"""The handshake directory (docs/wire.md, "The handshake directory"): the
library tells the reporter sidecar what its process loaded, through files in
an ``emptyDir`` both containers mount, so that confirmation means "the
process loaded it".

Python apps often run several worker processes (gunicorn, uvicorn
``--workers``) that share one handshake directory. So that the file never
claims more than *every* process loaded, each process (each store in it)
first records its own revision in a dot-named file the sidecar ignores
(``.<rotation>.<role>-revision.proc-<pidns>-<pid>-<n>``), then writes the
**lowest** revision of the live processes to ``<rotation>.<role>-revision``,
under an advisory lock. Files of processes that stopped are removed.
Last-seen values are merged the same way (latest time per version).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Dict, Iterable, Iterator, Optional

from . import wire
from .wire import Instant

try:
    import fcntl
except ImportError:  # not POSIX: no lock (one process per directory)
    fcntl = None  # type: ignore[assignment]

_PROC = ".proc-"


def _pid_namespace() -> str:
    """The PID namespace's inode: a pid means something only inside it."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "0"
    digits = "".join(c for c in link if c.isdigit())
    return digits or "0"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _checked(name: str) -> str:
    """A rotation or role name fit for a file name in the directory."""
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise ValueError(f"{name!r} cannot name a handshake file")
    return name


class Handshake:
    """One handshake directory. Methods raise ``OSError`` (or
    ``ValueError`` for an unusable name); callers log and keep serving."""

    # Per process: the files already cleared at start, and the own files of
    # this process's live stores (never "stale", whatever their pid says).
    _started: set = set()
    _mine: set = set()
    _started_lock = threading.Lock()

    def __init__(self, directory: str):
        self.directory = os.fspath(directory)

    @classmethod
    def _after_fork(cls) -> None:
        cls._started_lock = threading.Lock()  # another thread may have held it

    @classmethod
    def from_env(cls) -> Optional["Handshake"]:
        directory = os.environ.get(wire.HANDSHAKE_ENV, "")
        return cls(directory) if directory else None

    def __repr__(self) -> str:
        return f"Handshake({self.directory!r})"

    # --- the revision files -----------------------------------------------------

    def begin(self, rotation: str, roles: Iterable[str], last_seen: bool) -> None:
        """At process start, before the first load: a file left by a process
        that stopped speaks for that process only. Once per process."""
        pid = os.getpid()
        for role in roles:
            main = wire.revision_handshake_file(_checked(rotation), _checked(role))
            with self._started_lock:
                if (self.directory, main, pid) in self._started:
                    continue
                self._started.add((self.directory, main, pid))
            with self._locked(rotation):
                self._remove(main)
                self._lowest(main, forget_own=True)
        if last_seen:
            with self._locked(rotation):
                self._remove(wire.last_seen_handshake_file(_checked(rotation)))

    def loaded(self, owner: int, rotation: str, role: str, revision: int) -> None:
        """This process (store ``owner``) now uses ``revision``; the file
        says the lowest revision any live process uses."""
        main = wire.revision_handshake_file(_checked(rotation), _checked(role))
        own = self._own(main, owner)
        with self._locked(rotation):
            self._write(own, wire.format_revision_report(revision))
            self._mine.add(os.path.join(self.directory, own))
            lowest = self._lowest(main)
            if lowest is None:
                self._remove(main)
            else:
                self._write(main, wire.format_revision_report(lowest))

    def release(self, owner: int, rotation: str, role: str) -> None:
        """Store ``owner`` closed: it no longer holds down the lowest."""
        main = wire.revision_handshake_file(_checked(rotation), _checked(role))
        own = self._own(main, owner)
        with self._locked(rotation):
            self._remove(own)
            self._mine.discard(os.path.join(self.directory, own))
            lowest = self._lowest(main)
            if lowest is None:
                self._remove(main)
            else:
                self._write(main, wire.format_revision_report(lowest))

    def _own(self, main: str, owner: int) -> str:
        return f".{main}{_PROC}{_pid_namespace()}-{os.getpid()}-{owner}"

    def _lowest(self, main: str, forget_own: bool = False) -> Optional[int]:
        """The lowest revision of the live processes' files; removes the files
        of processes that stopped (and, with ``forget_own``, of an earlier
        process that had this pid)."""
        prefix, ns, me = f".{main}{_PROC}", _pid_namespace(), os.getpid()
        lowest = None
        for name in os.listdir(self.directory):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("-")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                continue
            if parts[0] == ns:
                pid = int(parts[1])
                stale = forget_own and pid == me and os.path.join(self.directory, name) not in self._mine
                if stale or not _alive(pid):
                    self._remove(name)
                    continue
            # Another PID namespace (another container) is not ours to judge.
            revision = wire.parse_number(self._read(name) or "")
            if revision is not None and (lowest is None or revision < lowest):
                lowest = revision
        return lowest

    # --- last-seen ------------------------------------------------------------

    def seen(self, rotation: str, seen: Dict[int, Instant], accepted: Iterable[int]) -> None:
        """Merges this process's last-seen times into ``<rotation>.last-seen``
        (latest time per version, accepted versions only, the newest
        versions within the caps)."""
        name = wire.last_seen_handshake_file(_checked(rotation))
        keep = set(accepted)
        with self._locked(rotation):
            old = self._read(name)
            merged: Dict[int, Instant] = {}
            if old:
                try:
                    merged = dict(wire.parse_last_seen_lenient(old).value)
                except wire.WireError:
                    pass
            for v, at in seen.items():
                merged[v] = max(at, merged.get(v, at))
            merged = {v: at for v, at in merged.items() if v in keep}
            if not merged:
                return  # the empty value is never written
            newest = sorted(merged)[-wire.LAST_SEEN_MAX_ENTRIES :]
            text = wire.format_last_seen({v: merged[v] for v in newest})
            while len(text) > wire.LAST_SEEN_MAX_LEN:  # never with whole seconds
                newest = newest[1:]
                text = wire.format_last_seen({v: merged[v] for v in newest})
            self._write(name, text)

    # --- files ------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, rotation: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        path = os.path.join(self.directory, f".{_checked(rotation)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self, name: str) -> Optional[str]:
        try:
            with open(os.path.join(self.directory, name), "rb") as f:
                return f.read(wire.LAST_SEEN_MAX_LEN + 1).decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    def _write(self, name: str, content: str) -> None:
        """Atomically (a dot-named temporary renamed over the name), and only
        when the content changes."""
        if self._read(name) == content:
            return
        tmp = os.path.join(self.directory, f".{name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "wb") as f:
                f.write(content.encode("utf-8"))
            os.replace(tmp, os.path.join(self.directory, name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=Handshake._after_fork)
