#!/usr/bin/env python3
"""A presenter client: every ``INTERVAL_MS`` (default 25) it sends
``GET TARGET_URL`` with the current key and counts the answers: ``ok``
(2xx), ``rejected`` (401/403) and ``errors`` (no answer, other statuses).
``GET /counts`` on ``PORT`` (default 8081) gives them as JSON; on SIGTERM
it prints them and exits.

The key is cached in memory by the library and reloaded within
``POLL_SECONDS`` (default 1) of a kubelet swap; with
``KEYROTOR_HANDSHAKE_DIR`` set, the library confirms each revision only
once this process sends it. Standard library only.

    KEY_DIR=/var/run/keyrotor/orders-api-key TARGET_URL=http://api:8080/ python3 presenter_client.py
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import keyrotor

counts = {"ok": 0, "rejected": 0, "errors": 0}
lock = threading.Lock()
stop = threading.Event()


def count(outcome):
    with lock:
        counts[outcome] += 1


def snapshot():
    with lock:
        return dict(counts)


class CountsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/counts":
            self.send_error(404)
            return
        body = json.dumps(snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def send(presenter, url):
    request = urllib.request.Request(url)
    presenter.apply(request.headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            count("ok")
    except urllib.error.HTTPError as e:
        count("rejected" if e.code in (401, 403) else "errors")
    except OSError:
        count("errors")


def main():
    presenter = keyrotor.Presenter(os.environ["KEY_DIR"], poll_interval=float(os.environ.get("POLL_SECONDS", "1")))
    url = os.environ["TARGET_URL"]
    interval = int(os.environ.get("INTERVAL_MS", "25")) / 1000
    server = ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8081"))), CountsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"presenter: {presenter.snapshot!r} -> {url} every {interval * 1000:.0f} ms", flush=True)
    next_at = time.monotonic()
    while not stop.is_set():
        send(presenter, url)
        next_at = max(next_at + interval, time.monotonic() - interval)
        stop.wait(max(0.0, next_at - time.monotonic()))
    server.shutdown()
    presenter.close()
    print(f"counts: {json.dumps(snapshot())}", flush=True)


if __name__ == "__main__":
    main()
