// @ts-check
// An API that checks every request's key with @keyrotor/consumer and caches
// the accepted keys in memory: `GET /` answers 200 for an accepted key, 401
// otherwise. The library reloads the keys when kubelet swaps the volume and
// confirms the revision it uses through KEYROTOR_HANDSHAKE_DIR.
//
//   KEY_DIR      the mounted verifier Secret (default /var/run/keyrotor/api-key)
//   PORT         port to listen on (default 8080); HOST (default all interfaces)
//   KEY_HEADER   header carrying the key (default authorization: Bearer <key>)
//   POLL_MS      how often to look for a new volume (default 1000)
//   KEYROTOR_HANDSHAKE_DIR  the emptyDir shared with `keyrotor reporter --handshake`
'use strict';

const http = require('node:http');
const { Verifier, requireKey } = require('..');

const env = process.env;
const verifier = Verifier.open(env.KEY_DIR || '/var/run/keyrotor/api-key', {
  pollIntervalMs: Number(env.POLL_MS || 1000),
  lastSeen: true,
});
const log = (/** @type {import('..').Snapshot} */ s) =>
  console.log(`verifier: ${s.rotation} revision ${s.revision}, accepted ${s.accepted.join(',') || 'none'}`);
log(verifier.snapshot);
verifier.store.onChange((next) => log(next));

const guard = requireKey(verifier, { header: env.KEY_HEADER || 'authorization' });
const server = http.createServer((req, res) =>
  guard(req, res, () => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end('ok\n');
  }),
);
server.keepAliveTimeout = 65_000;
server.listen(Number(env.PORT || 8080), env.HOST || undefined, () => {
  console.log(`verifier: listening on ${JSON.stringify(server.address())}`);
});

process.on('SIGTERM', () => {
  console.log('verifier: stopping');
  verifier.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
