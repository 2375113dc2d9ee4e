import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { KeyrotorAuth, MiddlewareOptions, Verifier, keyrotorOf, requireKey } from '../src/index';
import { KubeletVolume, fakeKey, scratch, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let verifier: Verifier;
const servers: http.Server[] = [];

before(() => {
  root = scratch();
  const volume = new KubeletVolume(path.join(root.dir, 'volume'));
  volume.publish(verifierFiles(7, [2, 3]));
  verifier = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  volume.publish(verifierFiles(8, [3, 4]));
  verifier.store.refresh(); // 2 is retired now
});
after(() => {
  for (const s of servers) s.close();
  verifier.close();
  root.cleanup();
});

/** A loopback server whose handler answers with the version the middleware passed on. */
async function serve(options?: MiddlewareOptions<http.IncomingMessage, http.ServerResponse>): Promise<string> {
  const guard = requireKey(verifier, options);
  const server = http.createServer((req, res) =>
    guard(req, res, () => {
      const auth: KeyrotorAuth | undefined = keyrotorOf(req);
      res.end(`version ${auth?.version}`);
    }),
  );
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function get(url: string, headers: Record<string, string>) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

test('an accepted bearer key passes with its version; wrong and missing keys get 401', async () => {
  const url = await serve();
  const ok = await get(url, { authorization: `Bearer ${fakeKey(4)}` });
  assert.deepEqual([ok.status, ok.body], [200, 'version 4']);
  const lower = await get(url, { authorization: `bearer   ${fakeKey(3)} ` });
  assert.deepEqual([lower.status, lower.body], [200, 'version 3']);
  const wrong = await get(url, { authorization: 'Bearer fake-test-key-never-issued-0000' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('x-keyrotor-refusal'), null);
  assert.equal(wrong.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  const missing = await get(url, {});
  assert.equal(missing.status, 401);
  assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
  const basic = await get(url, { authorization: `Basic ${fakeKey(4)}` });
  assert.equal(basic.status, 401);
});

test('a retired key gets 401 with X-Keyrotor-Refusal: retired', async () => {
  const url = await serve();
  const res = await get(url, { authorization: `Bearer ${fakeKey(2)}` });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('x-keyrotor-refusal'), 'retired');
  assert.doesNotMatch(res.body, /fake-test-key/);
});

test('the key can come from another header', async () => {
  const url = await serve({ header: 'X-Api-Key' });
  assert.equal((await get(url, { 'x-api-key': fakeKey(3) })).status, 200);
  assert.equal((await get(url, { authorization: `Bearer ${fakeKey(3)}` })).status, 401);
});

test('a custom refusal answers instead of the default one', async () => {
  const url = await serve({
    refuse: (_req, res, refusal) => {
      res.statusCode = 403;
      res.end(refusal.status);
    },
  });
  const res = await get(url, { authorization: `Bearer ${fakeKey(2)}` });
  assert.deepEqual([res.status, res.body], [403, 'retired']);
});

test('the middleware fits a node:http handler without type arguments', () => {
  type Handler = (req: http.IncomingMessage, res: http.ServerResponse, next: (error?: unknown) => void) => void;
  const handler: Handler = requireKey(verifier);
  assert.equal(typeof handler, 'function');
});

test('Express-style responses get the version in res.locals', () => {
  const guard = requireKey(verifier);
  const req = { headers: { authorization: `Bearer ${fakeKey(3)}` } };
  const res = { statusCode: 200, locals: {} as Record<string, unknown>, setHeader() {}, end() {} };
  let passed = false;
  guard(req, res, () => (passed = true));
  assert.ok(passed);
  assert.deepEqual(res.locals.keyrotor, { version: 3n });
});
