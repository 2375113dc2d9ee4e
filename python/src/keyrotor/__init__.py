"""keyrotor: read keys that keyrotor rotates, verify and present them, and
confirm what the process loaded (docs/wire.md).

    from keyrotor import Verifier, WSGIMiddleware
    verifier = Verifier("/var/run/keyrotor/orders-api-key")
    app = WSGIMiddleware(app, verifier)
"""

from .handshake import Handshake
from .middleware import ASGIMiddleware, WSGIMiddleware, presented_key
from .presenter import Presenter
from .secret import SecretKey, key_shaped
from .snapshot import Meta, Presented, Snapshot, load, load_meta
from .store import FROM_ENV, KeyStore
from .verifier import ACCEPTED, RETIRED, UNKNOWN, Check, Verifier
from .volume import VolumeError

__version__ = "0.1.0"

__all__ = [
    "ACCEPTED",
    "ASGIMiddleware",
    "Check",
    "FROM_ENV",
    "Handshake",
    "KeyStore",
    "Meta",
    "Presented",
    "Presenter",
    "RETIRED",
    "SecretKey",
    "Snapshot",
    "UNKNOWN",
    "Verifier",
    "VolumeError",
    "WSGIMiddleware",
    "key_shaped",
    "load",
    "load_meta",
    "presented_key",
]
