import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { HandshakeError, KeyStore, LastSeen, Presenter, RevisionReport, Verifier, VolumeError } from '../src/index';
import { KubeletVolume, eventually, fakeKey, presenterFiles, scratch, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let volume: KubeletVolume;
let handshakeDir: string;
const closers: { close(): void }[] = [];

beforeEach(() => {
  root = scratch();
  volume = new KubeletVolume(path.join(root.dir, 'volume'));
  handshakeDir = path.join(root.dir, 'handshake');
  fs.mkdirSync(handshakeDir);
});
afterEach(() => {
  for (const c of closers.splice(0)) c.close();
  root.cleanup();
});

function read(name: string): string | null {
  try {
    return fs.readFileSync(path.join(handshakeDir, name), 'utf8');
  } catch {
    return null;
  }
}

function inode(name: string): number {
  return fs.statSync(path.join(handshakeDir, name)).ino;
}

function verifier(options: Parameters<typeof Verifier.open>[1] = {}): Verifier {
  const v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir, ...options });
  closers.push(v);
  return v;
}

test('the revision is confirmed after the first load, and rewritten only when it changes', () => {
  volume.publish(verifierFiles(7, [3]));
  const v = verifier();
  assert.equal(read('orders.verifier-revision'), '7');
  const first = inode('orders.verifier-revision');
  volume.publish(verifierFiles(7, [3])); // a new generation, the same revision
  v.store.refresh();
  assert.equal(inode('orders.verifier-revision'), first, 'no write when the content is the same');
  volume.publish(verifierFiles(8, [3, 4]));
  v.store.refresh();
  assert.equal(read('orders.verifier-revision'), '8');
  assert.equal(RevisionReport.parse(read('orders.verifier-revision')!), 8n, 'strictly valid, no newline');
});

test('a reload the process did not switch to is never confirmed', () => {
  volume.publish(verifierFiles(7, [3]));
  const v = verifier({ onError: () => {} });
  volume.publish({ ...verifierFiles(8, [3, 4]), 'v4.sha256': 'x' });
  v.store.poll();
  assert.equal(read('orders.verifier-revision'), '7');
  fs.rmSync(volume.dir, { recursive: true });
  v.store.poll();
  assert.equal(read('orders.verifier-revision'), '7');
});

test('files an earlier process left are removed before the first load, even when that load fails', () => {
  fs.writeFileSync(path.join(handshakeDir, 'orders.verifier-revision'), '99');
  fs.writeFileSync(path.join(handshakeDir, 'orders.last-seen'), '3=2026-03-01T10:14:03Z');
  fs.writeFileSync(path.join(handshakeDir, 'billing.verifier-revision'), '5');
  volume.publish({ ...verifierFiles(7, [3]), accepted: '3,4' }); // no v4.sha256
  assert.throws(() => verifier(), (e: unknown) => e instanceof VolumeError && e.errorClass === 'missing');
  assert.equal(read('orders.verifier-revision'), null);
  assert.equal(read('orders.last-seen'), null);
  assert.equal(read('billing.verifier-revision'), '5', "another rotation's file is not ours");
});

test('a combined Secret is confirmed under both roles', () => {
  volume.publish({
    rotation: 'orders',
    role: 'verifier,presenter',
    revision: '5',
    accepted: '3,4',
    'v3.sha256': verifierFiles(1, [3])['v3.sha256']!,
    'v4.sha256': verifierFiles(1, [4])['v4.sha256']!,
    version: '4',
    key: fakeKey(4),
  });
  const store = KeyStore.open(volume.dir, { pollIntervalMs: 0, handshakeDir });
  closers.push(store);
  const v = Verifier.fromStore(store);
  const p = Presenter.fromStore(store);
  assert.equal(v.verify(p.key().expose()), 4n);
  assert.equal(read('orders.verifier-revision'), '5');
  assert.equal(read('orders.presenter-revision'), '5');
});

test('a presenter confirms the presenter role only', () => {
  volume.publish(presenterFiles(9, 4));
  const p = Presenter.open(volume.dir, { pollIntervalMs: 0, handshakeDir });
  closers.push(p);
  assert.deepEqual(fs.readdirSync(handshakeDir), ['orders.presenter-revision']);
  assert.equal(read('orders.presenter-revision'), '9');
});

test('a handshake write that fails keeps serving, names the path, and is retried', () => {
  volume.publish(verifierFiles(7, [3]));
  const missingDir = path.join(root.dir, 'not-yet');
  const errors: Error[] = [];
  const v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: missingDir, onError: (e) => errors.push(e) });
  closers.push(v);
  assert.equal(v.verify(fakeKey(3)), 3n);
  assert.ok(errors[0] instanceof HandshakeError);
  assert.match(errors[0].message, /not-yet\/orders\.verifier-revision: cannot write the handshake file: ENOENT/);
  fs.mkdirSync(missingDir);
  v.store.poll();
  assert.equal(fs.readFileSync(path.join(missingDir, 'orders.verifier-revision'), 'utf8'), '7');
});

test('writes leave no temporary file behind', () => {
  volume.publish(verifierFiles(7, [3]));
  const v = verifier({ lastSeen: true });
  v.check(fakeKey(3));
  v.flushLastSeen();
  assert.deepEqual(fs.readdirSync(handshakeDir).sort(), ['orders.last-seen', 'orders.verifier-revision']);
});

test('the handshake directory comes from KEYROTOR_HANDSHAKE_DIR when none is configured', () => {
  volume.publish(verifierFiles(7, [3]));
  const before = process.env.KEYROTOR_HANDSHAKE_DIR;
  process.env.KEYROTOR_HANDSHAKE_DIR = handshakeDir;
  try {
    closers.push(Verifier.open(volume.dir, { pollIntervalMs: 0 }));
  } finally {
    if (before === undefined) delete process.env.KEYROTOR_HANDSHAKE_DIR;
    else process.env.KEYROTOR_HANDSHAKE_DIR = before;
  }
  assert.equal(read('orders.verifier-revision'), '7');
});

test('Traffic mode writes last-seen to the second, in its written form, when it changed', async () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = verifier({ lastSeen: true, lastSeenIntervalMs: 20 });
  assert.equal(read('orders.last-seen'), null, 'nothing seen, nothing written');
  v.check(fakeKey(3), Date.parse('2026-03-01T10:14:03.400Z'));
  v.check(fakeKey(4), Date.parse('2026-03-01T10:15:00.500Z'));
  await eventually(() => read('orders.last-seen') !== null);
  const text = read('orders.last-seen')!;
  assert.equal(text, '3=2026-03-01T10:14:03Z,4=2026-03-01T10:15:01Z');
  assert.equal(LastSeen.format(LastSeen.parse(text)), text);
  const first = inode('orders.last-seen');
  v.check(fakeKey(4), Date.parse('2026-03-01T10:15:00.700Z')); // the same second
  v.flushLastSeen();
  assert.equal(inode('orders.last-seen'), first);
});

test('last-seen keeps the 256 newest versions', () => {
  const versions = Array.from({ length: 300 }, (_, i) => i + 1);
  volume.publish(verifierFiles(7, versions));
  const v = verifier({ lastSeen: true });
  for (const n of versions) v.check(fakeKey(n), Date.parse('2026-03-01T10:00:00Z'));
  v.flushLastSeen();
  const seen = LastSeen.parse(read('orders.last-seen')!);
  assert.equal(seen.size, 256);
  assert.ok(!seen.has(44n) && seen.has(45n) && seen.has(300n));
});

test('a rotation name that cannot name a file is reported, never written', () => {
  volume.publish(verifierFiles(7, [3], '../escape'));
  const errors: Error[] = [];
  const v = verifier({ onError: (e) => errors.push(e) });
  assert.equal(v.verify(fakeKey(3)), 3n);
  assert.deepEqual(fs.readdirSync(handshakeDir), []);
  assert.deepEqual(fs.readdirSync(root.dir).sort(), ['handshake', 'volume']);
  assert.ok(errors.length > 0 && errors.every((e) => e instanceof HandshakeError));
});
