"""What every codec of the wire contract shares: the typed error, the
grammar of numbers and the RFC 3339 times (docs/wire.md, "Common grammar").

Annotation values may be hostile (a pod writes its own), so every reader
checks a length before it looks at the text and never raises anything but
:class:`WireError`; an error quotes at most 32 characters of the value,
escaped.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

#: How many characters of a refused value an error quotes.
EXCERPT_CHARS = 32

#: The largest number of the contract (versions, revisions, counts).
MAX_NUMBER = 2**64 - 1

_DIGITS = frozenset(b"0123456789")


class WireError(ValueError):
    """An annotation value that does not read.

    ``error_class`` is the language-neutral class: ``too-long``,
    ``too-many``, ``syntax``, ``out-of-range`` or ``duplicate``.
    """

    def __init__(self, annotation: str, error_class: str, reason: str, text: str):
        self.annotation = annotation
        self.error_class = error_class
        self.reason = reason
        self.excerpt = _excerpt(text)
        super().__init__(f"malformed {annotation} value ({error_class}: {reason}): {self.excerpt}")


class Reject(Exception):
    """Raised inside a codec; the codec turns it into a :class:`WireError`."""

    def __init__(self, error_class: str, reason: str):
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


def _excerpt(text: str) -> str:
    head = text[:EXCERPT_CHARS]
    shown = head.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{shown}"' + ("…" if len(text) > EXCERPT_CHARS else "")


def check_len(text: str, cap: int) -> None:
    """Refuses ``text`` longer than ``cap`` bytes (UTF-8), before reading it."""
    # A character is at most 4 bytes: most texts are decided without encoding.
    if len(text) > cap or (len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap):
        raise Reject("too-long", f"longer than {cap} bytes")


def decimal(text: str, what: str = "number") -> int:
    """``1*20DIGIT`` at most 2^64 - 1: no sign, no space, leading zeros read."""
    raw = text.encode("utf-8", "surrogatepass")
    if not 1 <= len(raw) <= 20 or not _DIGITS.issuperset(raw):
        raise Reject("syntax", f"{what} is not a number")
    n = int(raw)
    if n > MAX_NUMBER:
        raise Reject("out-of-range", f"{what} is out of range")
    return n


def parse_number(text: str) -> Optional[int]:
    """The grammar of every number in files and annotations, or ``None``."""
    try:
        return decimal(text)
    except Reject:
        return None


def ows(text: str) -> str:
    """``text`` without the spaces and tabs around it (lenient readings)."""
    return text.strip(" \t")


# --- Times -------------------------------------------------------------------

_EARLIEST = -62_167_219_200  # 0000-01-01T00:00:00Z
_LATEST = 253_402_207_200  # 9999-12-30T22:00:00Z; its nanoseconds may follow


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


class Instant(NamedTuple):
    """A point in time to the nanosecond, between 0000-01-01T00:00:00Z and
    9999-12-30T22:00:00.999999999Z (what every implementation can hold;
    :class:`datetime.datetime` cannot: it has neither year 0 nor
    nanoseconds)."""

    seconds: int  # since 1970-01-01T00:00:00Z
    nanos: int = 0

    @classmethod
    def parse(cls, text: str) -> "Instant":
        """RFC 3339 ``date-time`` as docs/wire.md restricts it; raises
        :class:`Reject` (``syntax`` or ``out-of-range``)."""
        fields = _shape(text)
        if fields is None:
            raise Reject("syntax", "time is not an RFC 3339 date-time")
        y, mo, d, h, mi, s, nanos, offset = fields
        if d > _days_in_month(y, mo):
            raise Reject("out-of-range", "time is out of range")
        seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
        instant = cls(seconds, nanos)
        if not instant.in_range():
            raise Reject("out-of-range", "time is out of range")
        return instant

    def in_range(self) -> bool:
        return _EARLIEST <= self.seconds <= _LATEST and 0 <= self.nanos < 10**9

    def format(self) -> str:
        """UTC with ``Z``; the fraction only when not zero, without trailing zeros."""
        days, rest = divmod(self.seconds, 86400)
        y, m, d = _civil_from_days(days)
        text = f"{y:04d}-{m:02d}-{d:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
        if self.nanos:
            text += "." + f"{self.nanos:09d}".rstrip("0")
        return text + "Z"

    def rounded(self) -> "Instant":
        """To the nearest second (half up)."""
        return Instant(self.seconds + (self.nanos >= 500_000_000), 0)

    @classmethod
    def from_unix(cls, seconds: float) -> "Instant":
        whole = int(seconds // 1)
        return cls(whole, int(round((seconds - whole) * 1e9)) % 10**9)

    def __str__(self) -> str:
        return self.format()


def _num(text: str, start: int, length: int) -> Optional[int]:
    part = text[start : start + length]
    if len(part) != length or not all("0" <= c <= "9" for c in part):
        return None
    return int(part)


def _shape(t: str) -> Optional[tuple]:
    """``YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM)`` with each field in range."""
    y, mo, d = _num(t, 0, 4), _num(t, 5, 2), _num(t, 8, 2)
    h, mi, s = _num(t, 11, 2), _num(t, 14, 2), _num(t, 17, 2)
    if None in (y, mo, d, h, mi, s) or t[4:5] != "-" or t[7:8] != "-" or t[10:11] != "T":
        return None
    if t[13:14] != ":" or t[16:17] != ":":
        return None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 59):
        return None
    i, nanos = 19, 0
    if t[i : i + 1] == ".":
        j = i + 1
        while j < len(t) and "0" <= t[j] <= "9":
            j += 1
        if not 1 <= j - i - 1 <= 9:
            return None
        nanos = int(t[i + 1 : j].ljust(9, "0"))
        i = j
    if t[i:] == "Z":
        return y, mo, d, h, mi, s, nanos, 0
    oh, om = _num(t, i + 1, 2), _num(t, i + 4, 2)
    if len(t) != i + 6 or t[i] not in "+-" or t[i + 3] != ":" or oh is None or om is None:
        return None
    if oh > 23 or om > 59:
        return None
    offset = (oh * 3600 + om * 60) * (1 if t[i] == "+" else -1)
    return y, mo, d, h, mi, s, nanos, offset
