"""WSGI and ASGI middleware: let a request through only with an accepted
key, and tell the handler which version it was.

The key is read from a header, by default ``Authorization: Bearer <key>``
(``header="X-Api-Key", scheme=None`` reads a bare key). An accepted request
goes on with the version in ``environ["keyrotor.version"]`` (WSGI) or
``scope["keyrotor.version"]`` and ``scope["state"]["keyrotor_version"]``
(ASGI: Starlette's ``request.state.keyrotor_version``). Anything else gets
``401``; a retired key also gets ``X-Keyrotor-Refusal: retired``, so a
client that missed a rotation can tell. Neither the header nor the key is
ever logged.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Tuple

from .presenter import DEFAULT_HEADER, DEFAULT_SCHEME
from .verifier import RETIRED, Check, Verifier

ENVIRON_KEY = "keyrotor.version"
STATE_KEY = "keyrotor_version"
REFUSAL_HEADER = "X-Keyrotor-Refusal"


def presented_key(value: Optional[str], scheme: Optional[str]) -> Optional[str]:
    """The key in a header's value: after ``<scheme> `` (case-insensitive)
    when there is a scheme, spaces around it trimmed."""
    if value is None:
        return None
    value = value.strip(" \t")
    if scheme is None:
        return value
    given, _, key = value.partition(" ")
    if given.lower() != scheme.lower():
        return None
    return key.strip(" \t")


def _refusal(check: Check, scheme: Optional[str]) -> Tuple[bytes, List[Tuple[str, str]]]:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if scheme is not None:
        headers.append(("WWW-Authenticate", scheme))
    if check.outcome == RETIRED:
        headers.append((REFUSAL_HEADER, RETIRED))
        return b"the key was retired: use the current one\n", headers
    return b"unauthorized\n", headers


class _Gate:
    def __init__(self, verifier: Verifier, header: str, scheme: Optional[str], exempt: Iterable[str]):
        self.verifier = verifier
        self.header = header
        self.scheme = scheme
        self.exempt = frozenset(exempt)


class WSGIMiddleware(_Gate):
    """``app = WSGIMiddleware(app, verifier)``. ``exempt``: paths let
    through without a key (health checks)."""

    def __init__(
        self,
        app: Callable,
        verifier: Verifier,
        *,
        header: str = DEFAULT_HEADER,
        scheme: Optional[str] = DEFAULT_SCHEME,
        exempt: Iterable[str] = (),
    ):
        super().__init__(verifier, header, scheme, exempt)
        self.app = app
        name = header.upper().replace("-", "_")
        self._environ_name = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.exempt:
            return self.app(environ, start_response)
        check = self.verifier.check(presented_key(environ.get(self._environ_name), self.scheme))
        if check.accepted:
            environ[ENVIRON_KEY] = check.version
            return self.app(environ, start_response)
        body, headers = _refusal(check, self.scheme)
        headers.append(("Content-Length", str(len(body))))
        start_response("401 Unauthorized", headers)
        return [body]


class ASGIMiddleware(_Gate):
    """``app = ASGIMiddleware(app, verifier)`` for ``http`` and
    ``websocket`` scopes (a refused websocket is closed before it is
    accepted: the server answers 403); ``lifespan`` passes through."""

    def __init__(
        self,
        app: Callable,
        verifier: Verifier,
        *,
        header: str = DEFAULT_HEADER,
        scheme: Optional[str] = DEFAULT_SCHEME,
        exempt: Iterable[str] = (),
    ):
        super().__init__(verifier, header, scheme, exempt)
        self.app = app
        self._name = header.lower().encode("latin-1")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        value = next((v for k, v in scope.get("headers", ()) if k.lower() == self._name), None)
        raw = None if value is None else value.decode("latin-1")
        check = self.verifier.check(presented_key(raw, self.scheme))
        if check.accepted:
            scope = dict(scope)
            scope[ENVIRON_KEY] = check.version
            scope["state"] = {**scope.get("state", {}), STATE_KEY: check.version}
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body, headers = _refusal(check, self.scheme)
            headers.append(("Content-Length", str(len(body))))
            raw_headers: List[Any] = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            await send({"type": "http.response.start", "status": 401, "headers": raw_headers})
            await send({"type": "http.response.body", "body": body})
