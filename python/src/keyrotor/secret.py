"""Key material: :class:`SecretKey`, the only type that holds a key, and
the rule every key obeys (docs/wire.md, "Key files": 16 to 1024 bytes of
printable ASCII without spaces).

A ``SecretKey`` never shows itself: ``repr``, ``str``, ``format`` and
logging print ``<redacted>``; ``json`` cannot serialize it and ``pickle``
refuses it. Read it with :meth:`SecretKey.expose` only where it goes on the
wire. (Python cannot wipe memory; the library keeps one copy per loaded
snapshot and drops it with the snapshot.)
"""

from __future__ import annotations

import hmac

MIN_KEY_LEN = 16
MAX_KEY_LEN = 1024

# Bytes a key is made of: printable ASCII without the space.
_KEY_BYTES = bytes(range(0x21, 0x7F))


def key_shaped(value: bytes) -> bool:
    """Whether ``value`` can be a key at all (length and alphabet); decided
    without hashing, and without telling anything about a real key."""
    return MIN_KEY_LEN <= len(value) <= MAX_KEY_LEN and not value.translate(None, _KEY_BYTES)


class SecretKey:
    """A key. Redacted everywhere; compare two keys with ``==`` (constant
    time)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes):
        if not key_shaped(key):
            raise ValueError("a key is 16 to 1024 bytes of printable ASCII without spaces")
        self._key = key.decode("ascii")

    def expose(self) -> str:
        """The key itself. Every call is a place key material leaves this type."""
        return self._key

    def __repr__(self) -> str:
        return "SecretKey(<redacted>)"

    def __str__(self) -> str:
        return "<redacted key>"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self._key.encode(), other._key.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash of a key is a digest of it

    def __reduce__(self):
        raise TypeError("a SecretKey is not pickled")

    def __copy__(self) -> "SecretKey":
        return self

    def __deepcopy__(self, memo) -> "SecretKey":
        return self
