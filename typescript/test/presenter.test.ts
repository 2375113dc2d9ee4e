import assert from 'node:assert/strict';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { Presenter, SecretKey } from '../src/index';
import { KubeletVolume, eventually, fakeKey, presenterFiles, scratch, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let volume: KubeletVolume;
const opened: Presenter[] = [];

beforeEach(() => {
  root = scratch();
  volume = new KubeletVolume(path.join(root.dir, 'volume'));
});
afterEach(() => {
  for (const p of opened.splice(0)) p.close();
  root.cleanup();
});

function open(pollIntervalMs = 0): Presenter {
  const p = Presenter.open(volume.dir, { pollIntervalMs, handshakeDir: null, onError: () => {} });
  opened.push(p);
  return p;
}

test('the presenter hands out the key kubelet delivered last, with its version', async () => {
  volume.publish(presenterFiles(9, 4));
  const p = open(20);
  assert.ok(p.key() instanceof SecretKey);
  assert.equal(p.key().expose(), fakeKey(4));
  assert.equal(p.version(), 4n);
  volume.publish(presenterFiles(10, 5));
  await eventually(() => p.version() === 5n);
  assert.equal(p.key().expose(), fakeKey(5));
  assert.equal(p.snapshot.revision, 10n);
});

test('a presenter keeps its key when the next one is malformed', () => {
  volume.publish(presenterFiles(9, 4));
  const p = open();
  volume.publish({ ...presenterFiles(10, 5), key: 'too short' });
  p.store.poll();
  assert.equal(p.key().expose(), fakeKey(4));
});

test('the key comes with the user name of its version, across swaps', () => {
  volume.publish({ ...presenterFiles(9, 4), username: 'app_blue' });
  const p = open();
  const first = p.current();
  assert.deepEqual([first.version, first.key.expose(), first.username], [4n, fakeKey(4), 'app_blue']);
  volume.publish({ ...presenterFiles(10, 5), username: 'app_green\n' });
  p.store.poll();
  const second = p.current();
  assert.deepEqual([second.version, second.key.expose(), second.username], [5n, fakeKey(5), 'app_green']);
  volume.publish(presenterFiles(11, 6));
  p.store.poll();
  assert.equal(p.current().username, null);
  assert.equal(p.username(), null);
});

test('a malformed user name keeps the last good key and user name', () => {
  volume.publish({ ...presenterFiles(9, 4), username: 'app_blue' });
  const errors: unknown[] = [];
  const p = Presenter.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null, onError: (e) => errors.push(e) });
  opened.push(p);
  volume.publish({ ...presenterFiles(10, 5), username: 'app green' });
  p.store.poll();
  const { version, key, username } = p.current();
  assert.deepEqual([version, key.expose(), username], [4n, fakeKey(4), 'app_blue']);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /\/username: /);
  assert.doesNotMatch(String(errors[0]), /app green/);
});

test('a Secret that drops the presenter role is not switched to', () => {
  volume.publish(presenterFiles(9, 4));
  const p = open();
  volume.publish(verifierFiles(10, [4]));
  p.store.poll();
  assert.equal(p.key().expose(), fakeKey(4));
});

test('headers carry the key as a bearer token, or alone in a named header', () => {
  volume.publish(presenterFiles(9, 4));
  const p = open();
  assert.deepEqual(p.headers(), { authorization: `Bearer ${fakeKey(4)}` });
  assert.deepEqual(p.headers('X-Api-Key'), { 'x-api-key': fakeKey(4) });
});

test('a presenter will not open a Secret that serves only verifiers', () => {
  volume.publish(verifierFiles(7, [3]));
  assert.throws(() => Presenter.open(volume.dir, { handshakeDir: null }), /does not serve the presenter role/);
});
