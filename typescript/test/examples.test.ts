/**
 * The example apps as processes on loopback: a verifier API and a presenter
 * client, each caching its key in memory, through rotations done in
 * keyrotor's order, where every step waits for the handshake file that says
 * the process loaded the previous one. No request is rejected. A control
 * run that retires the old key on the volume's word (without waiting for
 * the presenter's handshake) rejects some: the confirmation is what saves
 * them.
 */

import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import { KubeletVolume, PACKAGE_ROOT, eventually, presenterFiles, scratch, verifierFiles } from './helpers';

let root: { dir: string; cleanup: () => void };
const children: ChildProcess[] = [];

beforeEach(() => (root = scratch()));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  root.cleanup();
});

interface App {
  child: ChildProcess;
  port: Promise<number>;
  output: () => string;
}

function start(example: string, env: Record<string, string>): App {
  const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'examples', example)], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const port = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error(`${example} exited: ${out}`)));
  });
  return { child, port, output: () => out };
}

async function stop(app: App): Promise<string> {
  const exited = new Promise((resolve) => app.child.on('exit', resolve));
  app.child.kill('SIGTERM');
  await exited;
  return app.output();
}

/** Runs `rotations` rotations; `confirmed` says whether each step waits for the handshake. */
async function rotate(rotations: number, confirmed: boolean): Promise<{ ok: number; rejected: number; errors: number }> {
  const verifierVolume = new KubeletVolume(path.join(root.dir, 'verifier'));
  const presenterVolume = new KubeletVolume(path.join(root.dir, 'presenter'));
  const handshake = path.join(root.dir, 'handshake');
  fs.mkdirSync(handshake);
  const revision = (role: string) => {
    try {
      return fs.readFileSync(path.join(handshake, `orders.${role}-revision`), 'utf8');
    } catch {
      return '';
    }
  };
  let [vRev, pRev] = [1, 1];
  verifierVolume.publish(verifierFiles(vRev, [1]));
  presenterVolume.publish(presenterFiles(pRev, 1));
  const env = { KEYROTOR_HANDSHAKE_DIR: handshake, POLL_MS: '50' };
  const verifier = start('verifier.js', { ...env, KEY_DIR: verifierVolume.dir });
  const url = `http://127.0.0.1:${await verifier.port}/`;
  // A presenter slower to notice than the verifier, as a cached key would be.
  const presenter = start('presenter.js', { ...env, KEY_DIR: presenterVolume.dir, TARGET_URL: url, INTERVAL_MS: '5', POLL_MS: '400' });
  const countsUrl = `http://127.0.0.1:${await presenter.port}/counts`;
  const counts = async () => (await (await fetch(countsUrl)).json()) as { ok: number; rejected: number; errors: number };
  await eventually(() => revision('presenter') === '1' && revision('verifier') === '1');
  const step = async (role: string, rev: number) => {
    if (confirmed) await eventually(() => revision(role) === String(rev), 10_000);
  };
  for (let v = 1; v <= rotations; v++) {
    verifierVolume.publish(verifierFiles(++vRev, [v, v + 1]));
    await step('verifier', vRev);
    presenterVolume.publish(presenterFiles(++pRev, v + 1));
    await step('presenter', pRev);
    verifierVolume.publish(verifierFiles(++vRev, [v + 1]));
    await step('verifier', vRev);
    await new Promise((r) => setTimeout(r, confirmed ? 50 : 600));
  }
  const final = await counts();
  const printed = await stop(presenter);
  assert.match(printed, /\{"ok":\d+,"rejected":\d+,"errors":\d+\}/);
  assert.doesNotMatch(printed + (await stop(verifier)), /fake-test-key/);
  return final;
}

test('rotations confirmed through the handshake reject no request of apps that cache their keys', async (t) => {
  const counts = await rotate(3, true);
  t.diagnostic(`counts ${JSON.stringify(counts)}`);
  assert.equal(counts.rejected, 0);
  assert.equal(counts.errors, 0);
  assert.ok(counts.ok > 50, `ok ${counts.ok}`);
});

test('retiring on the volume word instead of the process word rejects requests', async (t) => {
  const counts = await rotate(1, false);
  t.diagnostic(`counts ${JSON.stringify(counts)}`);
  assert.ok(counts.rejected > 0, `rejected ${counts.rejected}`);
});
