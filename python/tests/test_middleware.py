"""The WSGI and ASGI middleware: accepted keys go on with their version,
unknown ones get 401, retired ones 401 with X-Keyrotor-Refusal: retired."""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.util import setup_testing_defaults

import pytest

import keyrotor
from keyrotor import ASGIMiddleware, WSGIMiddleware

from conftest import key_of, presenter_files, verifier_files


@pytest.fixture
def verifier(volume):
    volume.publish(verifier_files(7, {3: key_of(3), 4: key_of(4)}))
    v = keyrotor.Verifier(volume.root, poll_interval=None, handshake=None)
    volume.publish(verifier_files(8, {4: key_of(4)}))
    v.refresh()  # 3 is retired now
    yield v
    v.close()


def wsgi_app(environ, start_response):
    body = f"hello v{environ['keyrotor.version']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def call_wsgi(app, headers=None, path="/"):
    environ = {"PATH_INFO": path}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    got = {}

    def start_response(status, hdrs):
        got["status"], got["headers"] = status, dict(hdrs)

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def test_wsgi_lets_an_accepted_bearer_key_through_with_its_version(verifier):
    status, _, body = call_wsgi(WSGIMiddleware(wsgi_app, verifier), {"Authorization": f"Bearer {key_of(4)}"})
    assert status == "200 OK" and body == b"hello v4"


def test_wsgi_refuses_unknown_and_missing_keys_with_401(verifier):
    app = WSGIMiddleware(wsgi_app, verifier)
    for headers in [{}, {"Authorization": f"Bearer {key_of(9)}"}, {"Authorization": key_of(4)},
                    {"Authorization": f"Basic {key_of(4)}"}]:
        status, hdrs, _ = call_wsgi(app, headers)
        assert status.startswith("401") and "X-Keyrotor-Refusal" not in hdrs
        assert hdrs["WWW-Authenticate"] == "Bearer"


def test_wsgi_tells_a_retired_key_apart(verifier):
    status, hdrs, body = call_wsgi(WSGIMiddleware(wsgi_app, verifier), {"Authorization": f"bearer {key_of(3)}"})
    assert status.startswith("401") and hdrs["X-Keyrotor-Refusal"] == "retired"
    assert key_of(3).encode() not in body


def test_wsgi_reads_a_bare_key_from_another_header_and_skips_exempt_paths(verifier):
    app = WSGIMiddleware(wsgi_app, verifier, header="X-Api-Key", scheme=None, exempt={"/healthz"})
    assert call_wsgi(app, {"X-Api-Key": f"  {key_of(4)} "})[0] == "200 OK"
    assert call_wsgi(app, {"Authorization": f"Bearer {key_of(4)}"})[0].startswith("401")

    def health(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    assert call_wsgi(WSGIMiddleware(health, verifier, exempt={"/healthz"}), path="/healthz")[0] == "200 OK"


def test_wsgi_over_loopback_with_a_presenter_setting_the_header(verifier, tmp_path, caplog):
    from conftest import Volume

    client_volume = Volume(tmp_path / "client")
    client_volume.publish(presenter_files(2, 4, key_of(4)))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            logging.getLogger("test.access").info("%s", args)

    server = make_server("127.0.0.1", 0, WSGIMiddleware(wsgi_app, verifier), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        with keyrotor.Presenter(client_volume.root, poll_interval=None, handshake=None) as p:
            request = urllib.request.Request(url)
            p.apply(request.headers)
            with urllib.request.urlopen(request, timeout=5) as r:
                assert r.read() == b"hello v4"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key_of(3)}"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=5)
        assert e.value.code == 401 and e.value.headers["X-Keyrotor-Refusal"] == "retired"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
    assert key_of(4) not in caplog.text and key_of(3) not in caplog.text


# --- ASGI ------------------------------------------------------------------------------

async def asgi_app(scope, receive, send):
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    body = f"hello v{scope['keyrotor.version']} {scope['state']['keyrotor_version']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def call_asgi(app, headers=(), kind="http", path="/"):
    scope = {"type": kind, "path": path, "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
             "state": {"app": "kept"}}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_lets_an_accepted_key_through_with_its_version_in_scope_and_state(verifier):
    sent = call_asgi(ASGIMiddleware(asgi_app, verifier), [("Authorization", f"Bearer {key_of(4)}")])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"hello v4 4"


def test_asgi_refuses_unknown_and_tells_retired_apart(verifier):
    app = ASGIMiddleware(asgi_app, verifier)
    unknown = call_asgi(app, [("Authorization", f"Bearer {key_of(9)}")])
    assert unknown[0]["status"] == 401
    assert b"x-keyrotor-refusal" not in dict(unknown[0]["headers"])
    retired = call_asgi(app, [("Authorization", f"Bearer {key_of(3)}")])
    assert retired[0]["status"] == 401 and dict(retired[0]["headers"])[b"x-keyrotor-refusal"] == b"retired"
    assert call_asgi(app, [])[0]["status"] == 401


def test_asgi_closes_a_refused_websocket_and_passes_lifespan_through(verifier):
    app = ASGIMiddleware(asgi_app, verifier, header="X-Api-Key", scheme=None)
    assert call_asgi(app, [], kind="websocket") == [{"type": "websocket.close", "code": 1008}]
    assert call_asgi(app, [("X-Api-Key", key_of(4))], kind="websocket") == [{"type": "websocket.accept"}]
    seen = []

    async def lifespan_app(scope, receive, send):
        seen.append(scope["type"])

    call_asgi(ASGIMiddleware(lifespan_app, verifier), kind="lifespan")
    assert seen == ["lifespan"]
