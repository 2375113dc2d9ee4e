import assert from 'node:assert/strict';
import crypto = require('node:crypto');
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { Verifier, VolumeError } from '../src/index';
import { KubeletVolume, eventually, fakeKey, presenterFiles, scratch, sha256hex, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let volume: KubeletVolume;
const opened: Verifier[] = [];

beforeEach(() => {
  root = scratch();
  volume = new KubeletVolume(path.join(root.dir, 'volume'));
});
afterEach(() => {
  for (const v of opened.splice(0)) v.close();
  root.cleanup();
});

function open(options: Parameters<typeof Verifier.open>[1] = {}): Verifier {
  const v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null, ...options });
  opened.push(v);
  return v;
}

test('a key accepted before a rotation is retired after it, and a wrong key stays unknown', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = open();
  assert.deepEqual(v.check(fakeKey(3)), { status: 'accepted', version: 3n });
  assert.equal(v.verify(fakeKey(4)), 4n);
  volume.publish(verifierFiles(8, [4, 5]));
  v.store.refresh();
  assert.deepEqual(v.check(fakeKey(3)), { status: 'retired', version: 3n });
  assert.equal(v.verify(fakeKey(3)), null, 'a retired key is never accepted');
  assert.deepEqual(v.check(fakeKey(5)), { status: 'accepted', version: 5n });
  assert.deepEqual(v.check('fake-test-key-never-issued-0000'), { status: 'unknown' });
  assert.deepEqual(v.retiredVersions(), [3n]);
});

test('a key accepted on both sides of a swap is accepted at every step of it', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = open();
  let steps = 0;
  volume.publish(verifierFiles(8, [4, 5]), () => {
    steps++;
    try {
      v.store.refresh();
    } catch (e) {
      assert.ok(e instanceof VolumeError); // a half-made state: the last snapshot stays
    }
    assert.equal(v.verify(fakeKey(4)), 4n);
  });
  assert.ok(steps >= 8);
  v.store.refresh();
  assert.equal(v.verify(fakeKey(5)), 5n);
});

test('a reload that finds a malformed digest keeps the last good snapshot and names the file', () => {
  volume.publish(verifierFiles(7, [3]));
  const errors: Error[] = [];
  const v = open({ onError: (e) => errors.push(e) });
  volume.publish({ ...verifierFiles(8, [3, 4]), 'v4.sha256': 'not hex at all' });
  v.store.poll();
  assert.equal(v.snapshot.revision, 7n);
  assert.equal(v.verify(fakeKey(3)), 3n);
  assert.equal(v.verify(fakeKey(4)), null);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof VolumeError && errors[0].errorClass === 'malformed');
  assert.match(errors[0].message, /v4\.sha256/);
  volume.publish(verifierFiles(9, [3, 4]));
  v.store.poll();
  assert.equal(v.verify(fakeKey(4)), 4n);
});

test('a volume that disappears after a good load keeps serving the last good snapshot', () => {
  volume.publish(verifierFiles(7, [3]));
  const errors: Error[] = [];
  const v = open({ onError: (e) => errors.push(e) });
  fs.rmSync(volume.dir, { recursive: true });
  v.store.poll();
  assert.equal(v.verify(fakeKey(3)), 3n);
  assert.equal((errors[0] as VolumeError).errorClass, 'missing');
});

test('values that cannot be keys are refused before hashing', (t) => {
  volume.publish(verifierFiles(7, [3]));
  const v = open();
  const hashed = t.mock.method(crypto, 'createHash');
  for (const bad of ['', 'short', 'k'.repeat(1025), 'fake test key v3 not a secret', 'fake-test-key-v3-nöt-a-secret', `${fakeKey(3)}\n`]) {
    assert.deepEqual(v.check(bad), { status: 'unknown' }, JSON.stringify(bad.slice(0, 20)));
  }
  assert.deepEqual(v.check(new Uint8Array([0, 255, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65])), { status: 'unknown' });
  assert.equal(hashed.mock.callCount(), 0);
  assert.equal(v.verify(Buffer.from(fakeKey(3))), 3n, 'bytes are verified as well as text');
  assert.equal(hashed.mock.callCount(), 1, 'a value that can be a key is hashed');
});

test('a presented key is compared with every accepted digest, whichever matches', (t) => {
  volume.publish(verifierFiles(7, [1, 2, 3, 4, 5]));
  const v = open();
  const compared = t.mock.method(crypto, 'timingSafeEqual');
  for (const version of [1, 3, 5]) {
    compared.mock.resetCalls();
    assert.equal(v.verify(fakeKey(version)), BigInt(version));
    assert.equal(compared.mock.callCount(), 5, `version ${version}`);
  }
  compared.mock.resetCalls();
  assert.equal(v.verify('fake-test-key-never-issued-0000'), null);
  assert.equal(compared.mock.callCount(), 5);
});

test('version 0 and the largest version are verified like any other', () => {
  const files = verifierFiles(7, []);
  files.accepted = '0,18446744073709551615';
  files['v0.sha256'] = sha256hex(fakeKey(0));
  files['v18446744073709551615.sha256'] = sha256hex(fakeKey('max'));
  volume.publish(files);
  const v = open();
  assert.equal(v.verify(fakeKey(0)), 0n);
  assert.equal(v.verify(fakeKey('max')), 18446744073709551615n);
});

test('a version accepted again after a rollback is no longer retired', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = open();
  volume.publish(verifierFiles(8, [4]));
  v.store.refresh();
  assert.equal(v.check(fakeKey(3)).status, 'retired');
  volume.publish(verifierFiles(9, [3, 4]));
  v.store.refresh();
  assert.equal(v.verify(fakeKey(3)), 3n);
  assert.deepEqual(v.retiredVersions(), []);
});

test('only the newest retired versions are remembered', () => {
  volume.publish(verifierFiles(1, [1]));
  const v = open({ retiredMemory: 2 });
  for (let n = 2; n <= 5; n++) {
    volume.publish(verifierFiles(n, [n]));
    v.store.refresh();
  }
  assert.deepEqual(v.retiredVersions(), [3n, 4n]);
  assert.equal(v.check(fakeKey(2)).status, 'unknown');
  assert.equal(v.check(fakeKey(4)).status, 'retired');
});

test('plain verifier keys are hashed at load and compared like digests', () => {
  volume.publish({ rotation: 'orders', role: 'verifier', revision: '7', accepted: '3', 'v3.key': `${fakeKey(3)}\n` });
  const v = open();
  assert.equal(v.verify(fakeKey(3)), 3n);
});

test('the verifier follows kubelet by itself on its timer', async () => {
  volume.publish(verifierFiles(7, [3]));
  const v = open({ pollIntervalMs: 20 });
  volume.publish(verifierFiles(8, [3, 4]));
  await eventually(() => v.verify(fakeKey(4)) === 4n);
});

test('a verifier will not open a Secret that serves only presenters', () => {
  volume.publish(presenterFiles(9, 4));
  assert.throws(() => Verifier.open(volume.dir, { handshakeDir: null }), /does not serve the verifier role/);
});

test('usage is recorded to the second for accepted versions only, and forgotten when they retire', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = open();
  v.check(fakeKey(3), Date.parse('2026-03-01T10:14:03.600Z'));
  v.check(fakeKey(3), Date.parse('2026-03-01T10:14:01Z'));
  v.check(fakeKey(4), Date.parse('2026-03-01T10:15:00Z'));
  v.check('fake-test-key-never-issued-0000', Date.parse('2026-03-01T10:16:00Z'));
  const seen = (): string => [...v.lastSeen()].map(([ver, at]) => `${ver}=${at}`).join(',');
  assert.equal(seen(), '3=2026-03-01T10:14:04Z,4=2026-03-01T10:15:00Z');
  volume.publish(verifierFiles(8, [4]));
  v.store.refresh();
  assert.equal(seen(), '4=2026-03-01T10:15:00Z');
  v.check(fakeKey(3));
  assert.equal(v.traffic().retired.get(3n), 1n);
  assert.equal(v.traffic().accepted.get(3n), 2n);
});
