import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { KeyStore, VolumeError, loadSnapshot } from '../src/index';
import { readConsistent } from '../src/volume';
import { KubeletVolume, scratch, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let volume: KubeletVolume;

beforeEach(() => {
  root = scratch();
  volume = new KubeletVolume(path.join(root.dir, 'volume'));
});
afterEach(() => root.cleanup());

function classOf(read: () => unknown): string {
  try {
    read();
  } catch (e) {
    assert.ok(e instanceof VolumeError, String(e));
    return e.errorClass;
  }
  return 'none';
}

test('a swap during a read is read again, and the error the swap caused is discarded', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  let calls = 0;
  const { value, generation } = readConsistent(volume.dir, (files) => {
    calls++;
    if (calls === 1) {
      volume.publish(verifierFiles(8, [4, 5]));
      return files.required('revision'); // the old directory is gone: missing
    }
    return files.required('revision');
  });
  assert.equal(calls, 2);
  assert.equal(value, '8');
  assert.equal(generation, volume.current());
});

test('a volume that changes on every read fails as unstable after five attempts', () => {
  volume.publish(verifierFiles(1, [1]));
  let calls = 0;
  const cls = classOf(() =>
    readConsistent(volume.dir, () => {
      calls++;
      volume.publish(verifierFiles(1 + calls, [1]));
    }),
  );
  assert.equal(cls, 'unstable');
  assert.equal(calls, 5);
});

test('a huge metadata file is refused as malformed without being read whole', () => {
  volume.publish(verifierFiles(7, [3]));
  const accepted = path.join(volume.dir, volume.current()!, 'accepted');
  fs.truncateSync(accepted, 2 * 1024 * 1024 * 1024); // a sparse 2 GiB file
  const started = Date.now();
  assert.equal(classOf(() => loadSnapshot(volume.dir)), 'malformed');
  assert.ok(Date.now() - started < 1000, 'read only the first 4097 bytes');
});

test('a file that cannot be read is io, not missing', () => {
  volume.publish(verifierFiles(7, [3]));
  const revision = path.join(volume.dir, volume.current()!, 'revision');
  fs.rmSync(revision);
  fs.mkdirSync(revision);
  assert.equal(classOf(() => loadSnapshot(volume.dir)), 'io');
});

test('a plain directory is read as it is, with no generation', () => {
  const dir = path.join(root.dir, 'plain');
  fs.mkdirSync(dir);
  for (const [name, content] of Object.entries(verifierFiles(7, [3]))) fs.writeFileSync(path.join(dir, name), content);
  fs.mkdirSync(path.join(dir, '..data')); // a directory named ..data is no swap link
  const snap = loadSnapshot(dir);
  assert.equal(snap.generation, null);
  assert.deepEqual(snap.accepted, [3n]);
});

test('a plain directory is reloaded when its content changes, and only then', () => {
  const dir = path.join(root.dir, 'plain');
  fs.mkdirSync(dir);
  const write = (files: Record<string, string>) => {
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  };
  write(verifierFiles(7, [3]));
  const store = KeyStore.open(dir, { pollIntervalMs: 0, handshakeDir: null });
  assert.equal(store.refresh(), null);
  write(verifierFiles(8, [3, 4]));
  assert.equal(store.refresh()?.revision, 8n);
  assert.equal(store.refresh(), null);
});

test('an unchanged kubelet volume costs one readlink: the snapshot object stays the same', () => {
  volume.publish(verifierFiles(7, [3]));
  const store = KeyStore.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  const first = store.snapshot;
  assert.equal(store.refresh(), null);
  assert.equal(store.snapshot, first);
  volume.publish(verifierFiles(8, [3, 4]));
  assert.equal(store.refresh()?.revision, 8n);
  assert.notEqual(store.snapshot, first);
});

test('a failed first load fails the open with the class of the error', () => {
  assert.equal(classOf(() => KeyStore.open(path.join(root.dir, 'nothing'), { handshakeDir: null })), 'missing');
});

test('a failure that persists is warned about once, and again once it came back after a recovery', (t) => {
  volume.publish(verifierFiles(7, [3]));
  const warned = t.mock.method(console, 'warn', () => {});
  const store = KeyStore.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  const broken = { ...verifierFiles(8, [3, 4]), 'v4.sha256': 'nope' };
  volume.publish(broken);
  for (let i = 0; i < 5; i++) store.poll();
  assert.equal(warned.mock.callCount(), 1);
  assert.match(String(warned.mock.calls[0]!.arguments[0]), /^keyrotor: .*v4\.sha256: is not 64 hex digits \(malformed\)$/);
  volume.publish(verifierFiles(9, [3, 4]));
  store.poll();
  volume.publish(broken);
  store.poll();
  store.poll();
  assert.equal(warned.mock.callCount(), 2);
  assert.equal(store.snapshot.revision, 9n);
});
