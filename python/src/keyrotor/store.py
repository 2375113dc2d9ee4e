"""A directory's last good snapshot, kept fresh, and what the process tells
the handshake directory about it.

Reload strategy: a daemon thread per store polls ``readlink(..data)`` every
``poll_interval`` seconds (1 s by default; it never keeps the process
alive) and reloads when the generation changed, or re-reads a plain
directory and compares. A reload that fails keeps the last good snapshot
and is logged by class and file, never content. After ``os.fork`` (gunicorn
``--preload``), the child restarts its poller and announces itself. With
``poll_interval=None`` nothing polls: call :meth:`KeyStore.refresh`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from typing import Callable, Dict, List, Optional, Tuple, Union

from . import snapshot as snap_mod
from .handshake import Handshake
from .snapshot import Snapshot
from .volume import VolumeError, generation

log = logging.getLogger("keyrotor")

class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


#: Default for ``handshake``: the directory named by ``KEYROTOR_HANDSHAKE_DIR``
#: when it is set, else none.
FROM_ENV = _FromEnv()
#: How often a store writes its revision files again (repairs a removed file,
#: forgets processes that stopped), even when nothing changed.
REANNOUNCE_SECONDS = 10.0

HandshakeArg = Union[str, os.PathLike, Handshake, _FromEnv, None]
_owners = itertools.count(1)
_live: "weakref.WeakSet[KeyStore]" = weakref.WeakSet()


def _handshake(arg: HandshakeArg) -> Optional[Handshake]:
    if arg is FROM_ENV:
        return Handshake.from_env()
    if arg is None or isinstance(arg, Handshake):
        return arg
    return Handshake(os.fspath(arg))  # type: ignore[arg-type]


class KeyStore:
    """The latest good snapshot of one projected-Secret directory.

    The first load happens in the constructor and raises
    :class:`~keyrotor.volume.VolumeError` (the only load allowed to fail the
    process); later reloads never raise from the poller.
    """

    def __init__(
        self,
        directory: Union[str, os.PathLike],
        *,
        role: Optional[str] = None,
        poll_interval: Optional[float] = 1.0,
        handshake: HandshakeArg = FROM_ENV,
        last_seen: bool = False,
        before_swap: Optional[Callable[[Snapshot, Snapshot], None]] = None,
        on_tick: Optional[Callable[[], None]] = None,
    ):
        self.directory = os.fspath(directory)
        self.handshake = _handshake(handshake)
        self._role = role
        self._poll_interval = poll_interval
        self._before_swap = before_swap
        self._on_tick = on_tick
        self._owner = next(_owners)
        self._lock = threading.RLock()
        self._announced: Dict[str, int] = {}
        self._announced_at = 0.0
        self._problems: Dict[str, Tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._begin(last_seen)
        self._snapshot = snap_mod.load(self.directory, role)
        self._announce()
        _live.add(self)
        self._start()

    def __repr__(self) -> str:
        return f"KeyStore({self.directory!r}, {self._snapshot!r})"

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot the process uses now (one attribute read)."""
        return self._snapshot

    def refresh(self) -> Optional[Snapshot]:
        """Reloads when the volume changed (one ``readlink`` when it did not);
        returns the new snapshot, or ``None``. Raises ``VolumeError`` when
        the reload fails; the last good snapshot stays."""
        with self._lock:
            old = self._snapshot
            now = generation(self.directory)
            if now is not None and now == old.generation:
                self._announce()
                return None
            new = snap_mod.load(self.directory, self._role)
            if new.generation is None and old.generation is None and new.same_content(old):
                self._announce()
                return None
            if self._before_swap is not None:
                self._before_swap(old, new)
            self._snapshot = new
            self._announce()
            return new

    def close(self) -> None:
        """Stops polling and withdraws this store's revision files."""
        self._stop.set()
        _live.discard(self)
        with self._lock:
            if self.handshake is not None:
                for role in self._announced:
                    try:
                        self.handshake.release(self._owner, self._snapshot.rotation, role)
                    except (OSError, ValueError) as e:
                        self._handshake_failed(e)
            self._announced = {}

    def __enter__(self) -> "KeyStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the handshake ------------------------------------------------------------

    def _begin(self, last_seen: bool) -> None:
        if self.handshake is None:
            return
        try:
            meta = snap_mod.load_meta(self.directory)
        except VolumeError:
            return  # the full load below fails and says why
        try:
            self.handshake.begin(meta.rotation, meta.roles, last_seen)
        except (OSError, ValueError) as e:
            self._handshake_failed(e)

    def _announce(self) -> None:
        """Writes the loaded revision for every role the snapshot serves
        (a combined Secret under both), when it changed or now and then."""
        if self.handshake is None:
            return
        snap = self._snapshot
        due = time.monotonic() - self._announced_at >= REANNOUNCE_SECONDS
        for role in snap.meta.roles:
            if not due and self._announced.get(role) == snap.revision:
                continue
            try:
                self.handshake.loaded(self._owner, snap.rotation, role, snap.revision)
                self._announced[role] = snap.revision
                self._problems.pop("handshake", None)
            except (OSError, ValueError) as e:
                self._announced.pop(role, None)
                self._handshake_failed(e)
        if due:
            self._announced_at = time.monotonic()

    def _handshake_failed(self, e: Exception) -> None:
        reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
        self._report("handshake", (reason, ""), "keyrotor: cannot write the handshake files in %s: %s",
                     getattr(self.handshake, "directory", "?"), reason)

    # --- polling ------------------------------------------------------------------

    def _start(self) -> None:
        if self._poll_interval is None or self._stop.is_set():
            return
        self._thread = threading.Thread(
            target=_poll, args=(weakref.ref(self), self._stop, self._poll_interval),
            name=f"keyrotor-reload-{self._owner}", daemon=True,
        )
        self._thread.start()

    def tick(self) -> None:
        """One poll: reload if changed, then the store's periodic work."""
        try:
            self.refresh()
        except VolumeError as e:
            self._report("volume", (e.error_class, e.file),
                         "keyrotor: reloading %s failed, still serving revision %s: %s (%s)",
                         self.directory, self._snapshot.revision, e, e.error_class)
        else:
            if self._problems.pop("volume", None) is not None:
                log.info("keyrotor: %s reads again (revision %s)", self.directory, self._snapshot.revision)
        if self._on_tick is not None:
            self._on_tick()

    def _report(self, kind: str, problem: Tuple[str, str], message: str, *args) -> None:
        """Logs a problem once, not on every poll."""
        if self._problems.get(kind) != problem:
            self._problems[kind] = problem
            log.warning(message, *args)

    def _after_fork(self) -> None:
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._announced = {}  # a new process: it announces itself
        self._start()


def _poll(ref: "weakref.ref[KeyStore]", stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        store = ref()
        if store is None:
            return
        try:
            store.tick()
        except Exception as e:  # a bug must not end reloading; say what, not content
            log.error("keyrotor: reload tick failed (%s)", type(e).__name__)
        del store


def _restart_after_fork() -> None:
    for store in list(_live):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)


def stores() -> List[KeyStore]:
    """The live stores of this process (diagnostics)."""
    return list(_live)
