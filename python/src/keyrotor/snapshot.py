"""The contents of one projected-Secret directory as typed values
(docs/wire.md, "Files" and "What a reader requires").

Verifier digests are decoded to bytes and plain verifier keys hashed at load
time, so verification compares fixed-size digests only. ``repr`` of
everything here shows versions, revisions and user names (not secret),
never a key or a digest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, NamedTuple, Optional, Tuple

from . import wire
from .secret import SecretKey, key_shaped
from .volume import MAX_KEY_FILE, Files, read_consistent

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_LIST_SPACE = " \t\n\r\f"
# other-role = 1*( %x21-2B / %x2D-7E ): printable ASCII but the comma.
_ROLE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {","}
# username-char = %x21-7E: printable ASCII, no space.
_USERNAME = re.compile(r"[\x21-\x7e]{1,%d}" % wire.MAX_USERNAME)


@dataclass(frozen=True)
class Meta:
    """What every projected Secret says about itself."""

    rotation: str
    roles: Tuple[str, ...]
    revision: int

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Presented(NamedTuple):
    """What a presenter sends: the version, its key and the user name the
    key belongs to (``None`` when the version has none), all from one
    snapshot, so a key never goes out with another version's user name."""

    version: int
    key: SecretKey
    username: Optional[str]


@dataclass(frozen=True, repr=False)
class Snapshot:
    """One loaded generation of a projected-Secret directory."""

    meta: Meta
    #: Versions the verifier Secret accepts (empty unless it serves ``verifier``).
    accepted: FrozenSet[int]
    #: The presenter's current version and key (``None`` unless it serves ``presenter``).
    current: Optional[Tuple[int, SecretKey]]
    #: Where ``..data`` pointed when it was read; ``None`` for a plain directory.
    generation: Optional[str]
    digests: Dict[int, bytes] = field(compare=False)
    #: The user name of the current version, from the same read as its key
    #: (``None`` without a ``username`` file, or unless it serves ``presenter``).
    username: Optional[str] = None

    @property
    def presented(self) -> Optional[Presented]:
        """The current version, key and user name together."""
        if self.current is None:
            return None
        return Presented(self.current[0], self.current[1], self.username)

    @property
    def rotation(self) -> str:
        return self.meta.rotation

    @property
    def revision(self) -> int:
        return self.meta.revision

    def same_content(self, other: "Snapshot") -> bool:
        """Whether ``other`` holds the same files' values (plain directories
        have no generation to tell a change)."""
        mine = self.current and (self.current[0], self.current[1].expose())
        theirs = other.current and (other.current[0], other.current[1].expose())
        return (self.meta, self.accepted, self.digests, mine, self.username) == (
            other.meta, other.accepted, other.digests, theirs, other.username
        )

    def __repr__(self) -> str:
        current = None if self.current is None else self.current[0]
        return (
            f"Snapshot(rotation={self.meta.rotation!r}, roles={list(self.meta.roles)!r}, "
            f"revision={self.meta.revision}, accepted={sorted(self.accepted)!r}, "
            f"current={current!r}, username={self.username!r}, "
            f"generation={self.generation!r})"
        )


def load_meta(directory: str) -> Meta:
    """Only the metadata files, read consistently (never a key file)."""
    return read_consistent(directory, _read_meta)[0]


def load(directory: str, require: Optional[str] = None) -> Snapshot:
    """The whole directory, read consistently; raises
    :class:`~keyrotor.volume.VolumeError`. With ``require``, a directory
    whose ``role`` does not name that role is malformed."""

    def read(files: Files) -> Snapshot:
        return _read_snapshot(files, require)

    snap, gen = read_consistent(directory, read)
    return Snapshot(snap.meta, snap.accepted, snap.current, gen, snap.digests, snap.username)


def _read_meta(files: Files) -> Meta:
    rotation = files.required(wire.ROTATION_FILE)
    if not rotation:
        raise files.malformed(wire.ROTATION_FILE, "is empty")
    roles = []
    for item in files.required(wire.ROLE_FILE).split(","):
        role = item.strip(_LIST_SPACE)
        if role and not _ROLE_CHARS.issuperset(role):
            raise files.malformed(wire.ROLE_FILE, "is not a comma-separated list of roles")
        if role and role not in roles:
            roles.append(role)
    if not roles:
        raise files.malformed(wire.ROLE_FILE, "names no role")
    return Meta(rotation, tuple(roles), _number(files, wire.REVISION_FILE))


def _read_snapshot(files: Files, require: Optional[str]) -> Snapshot:
    meta = _read_meta(files)
    if require is not None and not meta.has_role(require):
        raise files.malformed(wire.ROLE_FILE, f"does not name the {require} role")
    accepted: FrozenSet[int] = frozenset()
    digests: Dict[int, bytes] = {}
    if meta.has_role(wire.ROLE_VERIFIER):
        accepted = _versions(files)
        for v in sorted(accepted):
            digests[v] = _digest(files, v)
    current, username = None, None
    if meta.has_role(wire.ROLE_PRESENTER):
        version = _number(files, wire.VERSION_FILE)
        key = _key(files, wire.KEY_FILE)
        if key is None:
            raise files.missing(wire.KEY_FILE)
        current = (version, key)
        username = _username(files)
    return Snapshot(meta, accepted, current, None, digests, username)


def _number(files: Files, name: str) -> int:
    n = wire.parse_number(files.required(name))
    if n is None:
        raise files.malformed(name, "is not a number")
    return n


def _username(files: Files) -> Optional[str]:
    """The optional ``username`` file: absent is no user name; present, it
    must be one (an empty file is not "none")."""
    text = files.text(wire.USERNAME_FILE)
    if text is not None and not _USERNAME.fullmatch(text):
        raise files.malformed(
            wire.USERNAME_FILE,
            f"is not 1 to {wire.MAX_USERNAME} bytes of printable ASCII without spaces",
        )
    return text


def _versions(files: Files) -> FrozenSet[int]:
    out = set()
    for item in files.required(wire.ACCEPTED_FILE).split(","):
        item = item.strip(_LIST_SPACE)
        if not item:
            continue
        v = wire.parse_number(item)
        if v is None:
            raise files.malformed(wire.ACCEPTED_FILE, "is not a comma-separated list of versions")
        out.add(v)
    return frozenset(out)


def _key(files: Files, name: str) -> Optional[SecretKey]:
    """A key file: one trailing LF tolerated (hand-made files)."""
    raw = files.read(name, MAX_KEY_FILE)
    if raw is None:
        return None
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if not key_shaped(raw):
        raise files.malformed(name, "is not 16 to 1024 bytes of printable ASCII without spaces")
    return SecretKey(raw)


def _digest(files: Files, version: int) -> bytes:
    """Version N's digest: ``v<N>.sha256``, else SHA-256 of ``v<N>.key``."""
    name = wire.digest_file(version)
    text = files.text(name)
    if text is not None:
        if not _HEX64.fullmatch(text):
            raise files.malformed(name, "is not 64 hex digits")
        return bytes.fromhex(text)
    name = wire.plain_file(version)
    key = _key(files, name)
    if key is None:
        raise files.missing(name)
    return hashlib.sha256(key.expose().encode("ascii")).digest()
