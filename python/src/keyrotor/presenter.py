"""The presenter side: the current key, always the one kubelet last
delivered, as a redacting :class:`~keyrotor.secret.SecretKey`, with the
user name it belongs to when the rotation has ``spec.usernames``; and the
header that carries the key on an outgoing request."""

from __future__ import annotations

import os
from typing import MutableMapping, Optional, Tuple, Union

from . import wire
from .secret import SecretKey
from .snapshot import Presented, Snapshot
from .store import FROM_ENV, HandshakeArg, KeyStore

DEFAULT_HEADER = "Authorization"
DEFAULT_SCHEME = "Bearer"


class Presenter:
    """Hands out the current key of a hot-reloaded presenter (or combined)
    projected-Secret directory. ``handshake`` as for
    :class:`~keyrotor.verifier.Verifier`."""

    def __init__(
        self,
        directory: Union[str, os.PathLike],
        *,
        poll_interval: Optional[float] = 1.0,
        handshake: HandshakeArg = FROM_ENV,
    ):
        self.store = KeyStore(
            directory, role=wire.ROLE_PRESENTER, poll_interval=poll_interval, handshake=handshake
        )

    def __repr__(self) -> str:
        return f"Presenter({self.store.directory!r}, {self.snapshot!r})"

    def current(self) -> Tuple[int, SecretKey]:
        """The version to send now and its key (one consistent pair)."""
        current = self.store.snapshot.current
        assert current is not None  # the store requires the presenter role
        return current

    def presented(self) -> Presented:
        """The version, key and user name to send now, from one snapshot
        (asking for them one by one could straddle a reload)."""
        presented = self.store.snapshot.presented
        assert presented is not None  # the store requires the presenter role
        return presented

    def key(self) -> SecretKey:
        return self.current()[1]

    @property
    def version(self) -> int:
        return self.current()[0]

    @property
    def username(self) -> Optional[str]:
        """The user name of the current version, ``None`` when it has none.
        Not secret: fine to log. To send it with the key, take both from
        :meth:`presented`."""
        return self.store.snapshot.username

    def header_value(self, scheme: Optional[str] = DEFAULT_SCHEME) -> str:
        """``Bearer <key>`` (or the bare key with ``scheme=None``). Key
        material: put it on the wire, nowhere else."""
        key = self.key().expose()
        return key if scheme is None else f"{scheme} {key}"

    def apply(
        self,
        headers: MutableMapping[str, str],
        header: str = DEFAULT_HEADER,
        scheme: Optional[str] = DEFAULT_SCHEME,
    ) -> MutableMapping[str, str]:
        """Sets the key's header on an outgoing request's ``headers``
        (a dict, ``urllib.request.Request.headers``, a requests/httpx
        headers mapping) and returns them."""
        headers[header] = self.header_value(scheme)
        return headers

    @property
    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    @property
    def revision(self) -> int:
        return self.store.snapshot.revision

    def refresh(self) -> Optional[Snapshot]:
        return self.store.refresh()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Presenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
