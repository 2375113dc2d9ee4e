"""The wire contract (docs/wire.md): every name a consumer reads or writes,
and the codecs of the values it writes. Renaming anything here breaks
clusters: treat it as an API."""

from .codecs import (
    LAST_SEEN,
    LAST_SEEN_MAX_ENTRIES,
    LAST_SEEN_MAX_LEN,
    NUDGE,
    NUDGE_MAX_LEN,
    REVISION_REPORT,
    REVISION_REPORT_MAX_LEN,
    TRAFFIC,
    TRAFFIC_MAX_COUNTS,
    TRAFFIC_MAX_LEN,
    Lenient,
    Nudge,
    Traffic,
    format_ip,
    format_last_seen,
    format_revision_report,
    parse_ip,
    parse_last_seen,
    parse_last_seen_lenient,
    parse_revision_report,
)
from .common import EXCERPT_CHARS, MAX_NUMBER, Instant, WireError, parse_number

# Files of a projected Secret (a mounted volume).
ROTATION_FILE = "rotation"
ROLE_FILE = "role"
REVISION_FILE = "revision"
ACCEPTED_FILE = "accepted"
VERSION_FILE = "version"
KEY_FILE = "key"
#: Optional, beside ``key``: the user name of the key's version (not secret).
USERNAME_FILE = "username"
#: A user name: 1 to 63 bytes of printable ASCII without spaces.
MAX_USERNAME = 63

ROLE_VERIFIER = "verifier"
ROLE_PRESENTER = "presenter"

#: The domain every per-rotation pod annotation shares.
POD_ANNOTATION_DOMAIN = ".keyrotor.dev/"

#: Where a library finds the handshake directory when it is not given one.
HANDSHAKE_ENV = "KEYROTOR_HANDSHAKE_DIR"


def digest_file(version: int) -> str:
    """Verifier file with version N's SHA-256 (the default format)."""
    return f"v{version}.sha256"


def plain_file(version: int) -> str:
    """Verifier file with version N's key (``verifierFormat: Plain``)."""
    return f"v{version}.key"


def report_annotation(rotation: str, role: str) -> str:
    return f"{rotation}{POD_ANNOTATION_DOMAIN}{role}-revision"


def nudge_annotation(rotation: str) -> str:
    return f"{rotation}{POD_ANNOTATION_DOMAIN}nudge"


def last_seen_annotation(rotation: str) -> str:
    return f"{rotation}{POD_ANNOTATION_DOMAIN}last-seen"


def traffic_annotation(rotation: str) -> str:
    return f"{rotation}{POD_ANNOTATION_DOMAIN}traffic"


def revision_handshake_file(rotation: str, role: str) -> str:
    """The handshake file a library writes for ``rotation``'s ``role``."""
    return f"{rotation}.{role}-revision"


def last_seen_handshake_file(rotation: str) -> str:
    """The handshake file a verifier's library writes for last-seen."""
    return f"{rotation}.last-seen"
