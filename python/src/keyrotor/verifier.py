"""The verifier side: is a presented key one of the accepted versions, and
which? (docs/wire.md, "Verifying a presented key").

A value that cannot be a key is refused before hashing. Otherwise it is
hashed once (SHA-256) and compared with the digest of *every* accepted
version with ``hmac.compare_digest``, without stopping at a match, and the
version is selected with arithmetic rather than a branch, so timing tells
neither which bytes matched nor which version. (Python promises no
cycle-exact constant time; what is compared are digests of the presented
value, never a stored key.)

A verifier remembers the digests of the last versions it saw accepted and
then retired, to answer *retired* (a client missed a rotation) rather than
*unknown* (a typo, an attack); it never accepts them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import weakref
from typing import Dict, FrozenSet, NamedTuple, Optional, Union

from . import wire
from .handshake import Handshake
from .secret import key_shaped
from .snapshot import Snapshot
from .store import FROM_ENV, HandshakeArg, KeyStore
from .wire import Instant, Traffic

ACCEPTED = "accepted"
RETIRED = "retired"
UNKNOWN = "unknown"

#: Retired versions remembered (a rotation retires one a cycle).
RETIRED_MEMORY = 8
#: Seconds between writes of the last-seen handshake file, at most.
LAST_SEEN_INTERVAL = 5.0


class Check(NamedTuple):
    """What a presented key is: ``outcome`` is ``"accepted"``, ``"retired"``
    or ``"unknown"``; ``version`` is the version it is (``None`` when unknown)."""

    outcome: str
    version: Optional[int]

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED


_UNKNOWN = Check(UNKNOWN, None)
_live: "weakref.WeakSet[Verifier]" = weakref.WeakSet()


def find(digests: Dict[int, bytes], digest: bytes) -> Optional[int]:
    """The version whose digest is ``digest``: every one is compared."""
    found, hit = 0, 0
    for version, known in digests.items():
        eq = int(hmac.compare_digest(known, digest))
        mask = -eq  # all ones on a match, zero otherwise
        found = (version & mask) | (found & ~mask)
        hit |= eq
    return found if hit else None


class Verifier:
    """Verifies presented keys against a hot-reloaded verifier (or
    combined) projected-Secret directory.

    ``handshake``: the handshake directory (default: ``KEYROTOR_HANDSHAKE_DIR``
    when set; ``None``: none). ``last_seen=True`` (Traffic mode) records when
    each version was last presented and writes ``<rotation>.last-seen``
    there at most every ``last_seen_interval`` seconds.
    """

    def __init__(
        self,
        directory: Union[str, os.PathLike],
        *,
        poll_interval: Optional[float] = 1.0,
        handshake: HandshakeArg = FROM_ENV,
        last_seen: bool = False,
        last_seen_interval: float = LAST_SEEN_INTERVAL,
        retired_memory: int = RETIRED_MEMORY,
    ):
        self._retired: Dict[int, bytes] = {}
        self._retired_memory = retired_memory
        self._last_seen = last_seen
        self._last_seen_interval = last_seen_interval
        self._last_seen_at = 0.0
        self._written: Dict[int, Instant] = {}
        self._usage_lock = threading.Lock()
        self._seen: Dict[int, int] = {}
        self._counts: Dict[str, Dict[int, int]] = {ACCEPTED: {}, RETIRED: {}}
        self.store = KeyStore(
            directory,
            role=wire.ROLE_VERIFIER,
            poll_interval=poll_interval,
            handshake=handshake,
            last_seen=last_seen,
            before_swap=self._retire,
            on_tick=self._write_last_seen if last_seen else None,
        )
        _live.add(self)

    def __repr__(self) -> str:
        return f"Verifier({self.store.directory!r}, {self.snapshot!r}, retired={sorted(self._retired)!r})"

    # --- the request path -------------------------------------------------------------

    def check(self, presented: Union[str, bytes, None]) -> Check:
        """Whether ``presented`` is accepted, retired or unknown; records
        accepted and retired presentations."""
        if presented is None:
            return _UNKNOWN
        if isinstance(presented, str):
            try:
                presented = presented.encode("ascii")
            except UnicodeEncodeError:
                return _UNKNOWN
        if not key_shaped(presented):
            return _UNKNOWN  # refused before hashing: it cannot be a key
        digest = hashlib.sha256(presented).digest()
        version = find(self.store.snapshot.digests, digest)
        if version is not None:
            self._record(ACCEPTED, version)
            return Check(ACCEPTED, version)
        version = find(self._retired, digest)
        if version is not None:
            self._record(RETIRED, version)
            return Check(RETIRED, version)
        return _UNKNOWN

    def verify(self, presented: Union[str, bytes, None]) -> Optional[int]:
        """The accepted version ``presented`` is, or ``None`` (compare with
        ``is None``: a version may be 0)."""
        check = self.check(presented)
        return check.version if check.accepted else None

    def _record(self, outcome: str, version: int) -> None:
        now = int(time.time() + 0.5)  # to the nearest second: the report is coarse
        with self._usage_lock:
            counts = self._counts[outcome]
            counts[version] = counts.get(version, 0) + 1
            if outcome == ACCEPTED and self._seen.get(version, -1) < now:
                self._seen[version] = now

    # --- what it holds ------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    @property
    def accepted(self) -> FrozenSet[int]:
        return self.store.snapshot.accepted

    @property
    def revision(self) -> int:
        return self.store.snapshot.revision

    @property
    def retired(self) -> FrozenSet[int]:
        """Versions this process saw accepted and then retired (the last few)."""
        return frozenset(self._retired)

    def last_seen(self) -> Dict[int, Instant]:
        """When each accepted version was last presented, to the second."""
        with self._usage_lock:
            return {v: Instant(t) for v, t in sorted(self._seen.items())}

    def traffic(self) -> Traffic:
        """Presentations checked since the process started, per version."""
        with self._usage_lock:
            return Traffic(dict(self._counts[ACCEPTED]), dict(self._counts[RETIRED]))

    def refresh(self) -> Optional[Snapshot]:
        return self.store.refresh()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reloads and reports ---------------------------------------------------------

    def _retire(self, old: Snapshot, new: Snapshot) -> None:
        """Before the swap: versions leaving ``accepted`` become retired (a
        version in both is still accepted: the check looks there first)."""
        retired = dict(self._retired)
        for version, digest in old.digests.items():
            if version not in new.digests:
                retired[version] = digest
        for version in new.digests:
            retired.pop(version, None)
        for version in sorted(retired)[: max(0, len(retired) - self._retired_memory)]:
            del retired[version]
        self._retired = retired
        with self._usage_lock:
            self._seen = {v: t for v, t in self._seen.items() if v in new.accepted}

    def _write_last_seen(self) -> None:
        handshake: Optional[Handshake] = self.store.handshake
        if handshake is None or time.monotonic() - self._last_seen_at < self._last_seen_interval:
            return
        seen, snap = self.last_seen(), self.store.snapshot
        seen = {v: t for v, t in seen.items() if v in snap.accepted}
        if not seen or seen == self._written:
            return
        self._last_seen_at = time.monotonic()
        try:
            handshake.seen(snap.rotation, seen, snap.accepted)
            self._written = seen
        except (OSError, ValueError) as e:
            self.store._handshake_failed(e)


def _after_fork() -> None:
    for verifier in list(_live):
        verifier._usage_lock = threading.Lock()  # a request thread may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
