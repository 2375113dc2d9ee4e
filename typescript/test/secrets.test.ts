/**
 * Secrets stay secret: no key, presented value or digest in any text the
 * library produces (inspection, JSON, errors, logs).
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { format, inspect } from 'node:util';

import { Presenter, SecretKey, Verifier, VolumeError, loadSnapshot } from '../src/index';
import { KubeletVolume, fakeKey, presenterFiles, scratch, sha256hex, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
let volume: KubeletVolume;

beforeEach(() => {
  root = scratch();
  volume = new KubeletVolume(path.join(root.dir, 'volume'));
});
afterEach(() => root.cleanup());

/** Everything written to the console and to stdout/stderr while `run` runs. */
function captured(run: () => void): string {
  const out: string[] = [];
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const saved = methods.map((m) => console[m]);
  const writes = [process.stdout.write, process.stderr.write];
  for (const m of methods) console[m] = (...args: unknown[]) => void out.push(format(...args));
  const grab = (chunk: unknown) => (out.push(String(chunk)), true);
  process.stdout.write = grab as typeof process.stdout.write;
  process.stderr.write = grab as typeof process.stderr.write;
  try {
    run();
  } finally {
    methods.forEach((m, i) => (console[m] = saved[i]!));
    [process.stdout.write, process.stderr.write] = writes as [typeof process.stdout.write, typeof process.stderr.write];
  }
  return out.join('\n');
}

test('a loaded key redacts itself in String, templates, JSON, inspect and console.log', () => {
  volume.publish(presenterFiles(9, 4));
  const p = Presenter.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  const key = p.key();
  const shown = [
    String(key),
    `${key}`,
    JSON.stringify({ key }),
    inspect(key, { showHidden: true, depth: 10 }),
    inspect(p, { showHidden: true, depth: 10 }),
    inspect(p.snapshot, { showHidden: true, depth: 10 }),
    captured(() => console.log(key, p.current())),
  ].join('\n');
  assert.doesNotMatch(shown, /fake-test-key/);
  assert.match(shown, /SecretKey\(\[redacted\]\)/);
  p.close();
});

test('the user name may show but the key beside it never does', () => {
  volume.publish({ ...presenterFiles(9, 4), username: 'app_blue' });
  const p = Presenter.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  const shown = [
    inspect(p, { showHidden: true, depth: 10 }),
    inspect(p.current(), { showHidden: true, depth: 10 }),
    JSON.stringify({ ...p.current(), version: String(p.version()) }),
    captured(() => console.log(p.current(), p.snapshot)),
  ].join('\n');
  assert.doesNotMatch(shown, /fake-test-key/);
  assert.match(shown, /username: 'app_blue'/);
  assert.match(shown, /"username":"app_blue"/);
  p.close();
});

test('a snapshot and a verifier show versions but no digest', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  volume.publish(verifierFiles(8, [4]));
  v.store.refresh(); // 3 is remembered as retired
  const shown = [inspect(v, { showHidden: true, depth: 10 }), inspect(loadSnapshot(volume.dir), { showHidden: true, depth: 10 })].join('\n');
  for (const n of [3, 4]) {
    const hex = sha256hex(fakeKey(n));
    assert.ok(!shown.includes(hex) && !shown.includes(hex.slice(0, 16)), `digest of v${n}`);
    assert.ok(!shown.includes(Buffer.from(hex, 'hex').toString('base64').slice(0, 16)));
  }
  assert.match(shown, /accepted: \[ 4n/);
  v.close();
});

test('an error about a malformed key file names the file and class, never its bytes', () => {
  const secretish = 'almost-a-key but-with-a-space-inside';
  volume.publish({ ...presenterFiles(9, 4), key: secretish });
  let error: unknown;
  try {
    Presenter.open(volume.dir, { handshakeDir: null });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof VolumeError);
  assert.equal(error.errorClass, 'malformed');
  const shown = [error.message, String(error), inspect(error, { showHidden: true, depth: 10 }), JSON.stringify(error)].join('\n');
  assert.match(shown, /\/key: /);
  assert.doesNotMatch(shown, /almost|space-inside/);
});

test('a malformed digest is reported without its content', () => {
  volume.publish(verifierFiles(7, [3]));
  const v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: null });
  const digestish = `${sha256hex(fakeKey(4)).slice(0, 60)}zzzz`;
  volume.publish({ ...verifierFiles(8, [3, 4]), 'v4.sha256': digestish });
  const logs = captured(() => v.store.poll());
  assert.match(logs, /v4\.sha256: is not 64 hex digits \(malformed\)/);
  assert.ok(!logs.includes(digestish.slice(0, 12)));
  v.close();
});

test('verifying right, wrong and retired keys logs nothing of them', () => {
  volume.publish(verifierFiles(7, [3, 4]));
  const presented = ['fake-test-key-v4-not-a-secreT', fakeKey(4), fakeKey(3), 'x'.repeat(2000), 'bad key with spaces'];
  let v: Verifier | undefined;
  const logs = captured(() => {
    v = Verifier.open(volume.dir, { pollIntervalMs: 0, handshakeDir: path.join(root.dir, 'no-such-dir') });
    volume.publish(verifierFiles(8, [4]));
    v.store.poll();
    for (const key of presented) v.check(key);
  });
  assert.match(logs, /handshake/, 'the failing handshake write was reported');
  for (const key of presented) assert.ok(!logs.includes(key.slice(0, 10)), `presented value ${presented.indexOf(key)}`);
  v?.close();
});

test('a SecretKey refuses what cannot be a key, and copies what it keeps', () => {
  assert.throws(() => new SecretKey(Buffer.from('short')));
  assert.throws(() => new SecretKey(Buffer.from('has a space in the middle')));
  const bytes = Buffer.from(fakeKey(1));
  const key = new SecretKey(bytes);
  bytes.fill(0);
  assert.equal(key.expose(), fakeKey(1));
  fs.writeFileSync(path.join(root.dir, 'x'), JSON.stringify(key));
  assert.equal(fs.readFileSync(path.join(root.dir, 'x'), 'utf8'), '"SecretKey([redacted])"');
});
