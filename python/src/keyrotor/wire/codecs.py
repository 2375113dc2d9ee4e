"""The codecs of the values a consumer pod carries in its annotations (and
the handshake files carry for it): the revision report, the nudge,
last-seen and traffic (docs/wire.md, "The pod annotations").

Each value has a ``format`` and a strict ``parse`` (the whole value must
match its grammar); last-seen and traffic, which the operator reads from
many pods, also have ``parse_lenient``, which skips bad entries and counts
them. Nothing here is key material.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Union

from .common import Instant, Reject, WireError, check_len, decimal, ows

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Lenient(NamedTuple):
    """A value read leniently, and how many entries it skipped."""

    value: object
    skipped: int


def _strict(name: str, text: str, read):
    try:
        return read(text)
    except Reject as e:
        raise WireError(name, e.error_class, e.reason, text) from None


# --- Revision report ------------------------------------------------------------

REVISION_REPORT = "revision report"
REVISION_REPORT_MAX_LEN = 20


def parse_revision_report(text: str) -> int:
    """``<rotation>.keyrotor.dev/<role>-revision``: the bare revision."""

    def read(t: str) -> int:
        check_len(t, REVISION_REPORT_MAX_LEN)
        return decimal(t, "revision")

    return _strict(REVISION_REPORT, text, read)


def format_revision_report(revision: int) -> str:
    return str(revision)


# --- Nudge -----------------------------------------------------------------------

NUDGE = "nudge"
NUDGE_MAX_LEN = 62
_MAX_ATTEMPT = 2**32 - 1
_MAX_NUDGE_SECONDS = 253_402_207_200


@dataclass(frozen=True)
class Nudge:
    """``revision/attempt/unix-seconds``: the operator's; consumers only read it."""

    revision: int
    attempt: int
    at: Instant

    @classmethod
    def parse(cls, text: str) -> "Nudge":
        return _strict(NUDGE, text, cls._read)

    @classmethod
    def _read(cls, text: str) -> "Nudge":
        check_len(text, NUDGE_MAX_LEN)
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise Reject("syntax", "expected three fields")
        revision = decimal(parts[0], "revision")
        attempt = decimal(parts[1], "attempt")
        seconds = decimal(parts[2], "unix-seconds")
        if attempt > _MAX_ATTEMPT:
            raise Reject("out-of-range", "attempt is out of range")
        if seconds > _MAX_NUDGE_SECONDS:
            raise Reject("out-of-range", "unix-seconds is out of range")
        return cls(revision, attempt, Instant(seconds))

    def format(self) -> str:
        return f"{self.revision}/{self.attempt}/{max(self.at.seconds, 0)}"


# --- Last-seen -------------------------------------------------------------------

LAST_SEEN = "last-seen"
LAST_SEEN_MAX_LEN = 16 * 1024
LAST_SEEN_MAX_ENTRIES = 256


def _entries(text: str) -> List[str]:
    check_len(text, LAST_SEEN_MAX_LEN)
    if not text:
        return []
    if text.count(",") + 1 > LAST_SEEN_MAX_ENTRIES:
        raise Reject("too-many", f"more than {LAST_SEEN_MAX_ENTRIES} entries")
    return text.split(",")


def parse_last_seen(text: str) -> Dict[int, Instant]:
    """``<version>=<date-time>,…``: version → when it was last presented."""

    def read(t: str) -> Dict[int, Instant]:
        seen: Dict[int, Instant] = {}
        for entry in _entries(t):
            version, sep, time = entry.partition("=")
            if not sep:
                raise Reject("syntax", "an entry is not <version>=<time>")
            v, at = decimal(version, "version"), Instant.parse(time)
            if v in seen:
                raise Reject("duplicate", "version appears twice")
            seen[v] = at
        return dict(sorted(seen.items()))

    return _strict(LAST_SEEN, text, read)


def parse_last_seen_lenient(text: str) -> Lenient:
    """What the operator reads: bad entries skipped and counted, spaces
    around versions and times allowed, a repeated version keeps its latest
    time; only a value over the caps is refused (``WireError``)."""

    def read(t: str) -> Lenient:
        seen: Dict[int, Instant] = {}
        skipped = 0
        for entry in _entries(t):
            version, sep, time = entry.partition("=")
            try:
                if not sep:
                    raise Reject("syntax", "")
                v, at = decimal(ows(version)), Instant.parse(ows(time))
            except Reject:
                skipped += 1
                continue
            seen[v] = max(at, seen.get(v, at))
        return Lenient(dict(sorted(seen.items())), skipped)

    return _strict(LAST_SEEN, text, read)


def format_last_seen(seen: Dict[int, Instant]) -> str:
    """Versions ascending, times in UTC (as given: round them first to write
    whole seconds)."""
    return ",".join(f"{v}={at.format()}" for v, at in sorted(seen.items()))


# --- Traffic ---------------------------------------------------------------------

TRAFFIC = "traffic"
TRAFFIC_MAX_LEN = 64 * 1024
TRAFFIC_MAX_COUNTS = 512
_EXT_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_IP_CHARS = frozenset("0123456789abcdefABCDEF:.")


@dataclass
class Traffic:
    """Presentations a verifier checked since its process started, per
    version: ``accepted=3:1520;retired=2:5;client=10.0.0.5``."""

    accepted: Dict[int, int] = field(default_factory=dict)
    retired: Dict[int, int] = field(default_factory=dict)
    client: Optional[IPAddress] = None

    @classmethod
    def parse(cls, text: str) -> "Traffic":
        return _strict(TRAFFIC, text, cls._read_strict)

    @classmethod
    def parse_lenient(cls, text: str) -> Lenient:
        return _strict(TRAFFIC, text, cls._read_lenient)

    def format(self) -> str:
        def counts(m: Dict[int, int]) -> str:
            return ",".join(f"{v}:{n}" for v, n in sorted(m.items()))

        text = f"accepted={counts(self.accepted)};retired={counts(self.retired)}"
        if self.client is not None:
            text += f";client={format_ip(self.client)}"
        return text

    @classmethod
    def _read_strict(cls, text: str) -> "Traffic":
        check_len(text, TRAFFIC_MAX_LEN)
        lists: Dict[str, Dict[int, int]] = {}
        client = None
        for part in text.split(";"):
            name, sep, value = part.partition("=")
            if not sep:
                raise Reject("syntax", "a part is not <name>=<value>")
            if name in ("accepted", "retired"):
                counts = _strict_counts(value)
                if name in lists:
                    raise Reject("duplicate", "part appears twice")
                lists[name] = counts
            elif name == "client":
                ip = parse_ip(value)
                if ip is None:
                    raise Reject("syntax", "client is not an IP address")
                if client is not None:
                    raise Reject("duplicate", "client appears twice")
                client = ip
            else:
                _extension(name, value)
        return cls(lists.get("accepted", {}), lists.get("retired", {}), client)

    @classmethod
    def _read_lenient(cls, text: str) -> Lenient:
        check_len(text, TRAFFIC_MAX_LEN)
        t, skipped = cls(), 0
        for part in text.split(";"):
            name, sep, value = part.partition("=")
            if not sep:
                skipped += 1
                continue
            name = ows(name)
            if name in ("accepted", "retired"):
                counts, bad = _lenient_counts(value)
                setattr(t, name, counts)
                skipped += bad
            elif name == "client":
                t.client = parse_ip(ows(value))
                skipped += t.client is None
        return Lenient(t, skipped)


def _pieces(values: str) -> List[str]:
    if not values:
        return []
    if values.count(",") + 1 > TRAFFIC_MAX_COUNTS:
        raise Reject("too-many", f"more than {TRAFFIC_MAX_COUNTS} counts")
    return values.split(",")


def _strict_counts(values: str) -> Dict[int, int]:
    out: Dict[int, int] = {}
    for piece in _pieces(values):
        version, sep, count = piece.partition(":")
        if not sep:
            raise Reject("syntax", "a count is not <version>:<count>")
        v, n = decimal(version, "version"), decimal(count, "count")
        if v in out:
            raise Reject("duplicate", "version appears twice")
        out[v] = n
    return out


def _lenient_counts(values: str) -> tuple:
    out: Dict[int, int] = {}
    skipped = 0
    for piece in _pieces(ows(values)):
        version, sep, count = piece.partition(":")
        try:
            if not sep:
                raise Reject("syntax", "")
            out[decimal(ows(version))] = decimal(ows(count))
        except Reject:
            skipped += 1
    return out, skipped


def _extension(name: str, value: str) -> None:
    if not name or not _EXT_NAME.issuperset(name):
        raise Reject("syntax", "a part's name is not letters, digits and -")
    if not all(" " <= c <= "~" for c in value):
        raise Reject("syntax", "a part's value is not printable ASCII")


def parse_ip(text: str) -> Optional[IPAddress]:
    """An IPv4 or IPv6 address as RFC 3986 writes it in a host: no zone, no
    brackets, no port, no leading zeros in IPv4."""
    if not text or not _IP_CHARS.issuperset(text):
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    tail = text.rsplit(":", 1)[-1]
    if "." in tail and any(len(o) > 1 and o[0] == "0" for o in tail.split(".")):
        return None  # leading zeros in a dotted quad (older Pythons read them)
    return ip


def format_ip(ip: IPAddress) -> str:
    """RFC 5952, an IPv4-mapped address as ``::ffff:a.b.c.d``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


