// @ts-check
// A client that sends the current key with every request, caching it in
// memory through @keyrotor/consumer (reloaded when kubelet swaps the volume,
// confirmed through KEYROTOR_HANDSHAKE_DIR). It counts the answers: `ok`
// (2xx) and `rejected` (any other status); `errors` when no answer came.
// The counts are printed on SIGTERM and served at `GET /counts`.
//
//   KEY_DIR      the mounted presenter Secret (default /var/run/keyrotor/api-key)
//   TARGET_URL   where to send requests (default http://127.0.0.1:8080/)
//   INTERVAL_MS  pause between requests (default 25)
//   PORT         port of `GET /counts` (default 8081); HOST (default all interfaces)
//   KEY_HEADER   header carrying the key (default authorization: Bearer <key>)
//   POLL_MS      how often to look for a new volume (default 1000)
//   KEYROTOR_HANDSHAKE_DIR  the emptyDir shared with `keyrotor reporter --handshake`
'use strict';

const http = require('node:http');
const { Presenter } = require('..');

const env = process.env;
const presenter = Presenter.open(env.KEY_DIR || '/var/run/keyrotor/api-key', {
  pollIntervalMs: Number(env.POLL_MS || 1000),
});
const log = (/** @type {import('..').Snapshot} */ s) =>
  console.log(`presenter: ${s.rotation} revision ${s.revision}, sending version ${s.current?.version}`);
log(presenter.snapshot);
presenter.store.onChange((next) => log(next));

const target = env.TARGET_URL || 'http://127.0.0.1:8080/';
const interval = Number(env.INTERVAL_MS || 25);
const header = env.KEY_HEADER || 'authorization';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const counts = { ok: 0, rejected: 0, errors: 0 };
let stopping = false;

function send() {
  if (stopping) return;
  const next = () => setTimeout(send, interval);
  const req = http.get(target, { agent, headers: presenter.headers(header), timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) counts.ok++;
      else counts.rejected++;
      next();
    });
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', () => {
    counts.errors++;
    next();
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/counts') {
    res.setHeader('Content-Type', 'application/json');
    res.end(`${JSON.stringify(counts)}\n`);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.listen(Number(env.PORT || 8081), env.HOST || undefined, () => {
  console.log(`presenter: counts on ${JSON.stringify(server.address())}, sending to ${target} every ${interval} ms`);
  send();
});

process.on('SIGTERM', () => {
  stopping = true;
  console.log(JSON.stringify(counts));
  presenter.close();
  agent.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
