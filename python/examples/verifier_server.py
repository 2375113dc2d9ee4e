#!/usr/bin/env python3
"""A verifier API: ``GET /`` answers 200 when the request's key is accepted
(``Authorization: Bearer <key>``), 401 otherwise; ``GET /healthz`` is open.

The accepted digests are cached in memory by the library and reloaded
within ``POLL_SECONDS`` (default 1) of a kubelet swap; with
``KEYROTOR_HANDSHAKE_DIR`` set, the library confirms each revision only
once this process uses it. Standard library only.

    KEY_DIR=/var/run/keyrotor/orders-api-key PORT=8080 python3 verifier_server.py
"""

import logging
import os
import signal
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import keyrotor


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # one line a request at 40 rps is noise
        pass


def api(environ, start_response):
    if environ.get("PATH_INFO") == "/healthz":
        body = b"ok\n"
    else:
        body = f"ok v{environ['keyrotor.version']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    verifier = keyrotor.Verifier(os.environ["KEY_DIR"], poll_interval=float(os.environ.get("POLL_SECONDS", "1")),
                                 last_seen=os.environ.get("LAST_SEEN") == "1")
    app = keyrotor.WSGIMiddleware(api, verifier, exempt={"/healthz"})
    server = make_server(os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080")), app,
                         server_class=Server, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"verifier: {verifier.snapshot!r} on port {server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        verifier.close()


if __name__ == "__main__":
    main()
