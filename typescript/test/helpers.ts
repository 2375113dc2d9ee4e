/**
 * Test helpers: scratch directories, a mounted Secret updated the way
 * kubelet's AtomicWriter does it, and the fixtures' content encoding
 * (tests/wire/README.md).
 */

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The package's folder (typescript/), from build/test/. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
/** The repository's wire fixtures. */
export const FIXTURES = path.resolve(PACKAGE_ROOT, '..', 'tests', 'wire');

/** A fresh scratch directory; removed by `cleanup`. */
export function scratch(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyrotor-ts-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export function sha256hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Test keys, obviously fake. */
export function fakeKey(version: number | bigint | string): string {
  return `fake-test-key-v${version}-not-a-secret`;
}

/** The files of a verifier Secret accepting `versions` (digest format). */
export function verifierFiles(revision: number, versions: number[], rotation = 'orders'): Record<string, string> {
  const files: Record<string, string> = {
    rotation,
    role: 'verifier',
    revision: String(revision),
    accepted: versions.join(','),
  };
  for (const v of versions) files[`v${v}.sha256`] = sha256hex(fakeKey(v));
  return files;
}

/** The files of a presenter Secret whose current version is `version`. */
export function presenterFiles(revision: number, version: number, rotation = 'orders'): Record<string, string> {
  return { rotation, role: 'presenter', revision: String(revision), version: String(version), key: fakeKey(version) };
}

/**
 * A mounted Secret that changes as kubelet changes it: a new timestamped
 * directory, `..data_tmp` renamed over `..data`, visible links, and the old
 * directory removed.
 */
export class KubeletVolume {
  #serial = 0;
  #visible: string[] = [];

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Publishes `files` as a new generation; `between` runs after each of kubelet's steps. */
  publish(files: Record<string, string | Buffer>, between: (step: string) => void = () => {}): string {
    const previous = this.current();
    const gen = `..2026_03_01_10_00_00.${String(++this.#serial).padStart(9, '0')}`;
    fs.mkdirSync(path.join(this.dir, gen));
    for (const [name, content] of Object.entries(files)) {
      fs.writeFileSync(path.join(this.dir, gen, name), content);
      between(`wrote ${name}`);
    }
    const tmp = path.join(this.dir, '..data_tmp');
    fs.symlinkSync(gen, tmp);
    between('linked ..data_tmp');
    fs.renameSync(tmp, path.join(this.dir, '..data'));
    between('renamed ..data');
    for (const name of this.#visible) if (!(name in files)) fs.rmSync(path.join(this.dir, name), { force: true });
    for (const name of Object.keys(files)) {
      if (!this.#visible.includes(name)) fs.symlinkSync(`..data/${name}`, path.join(this.dir, name));
    }
    this.#visible = Object.keys(files);
    between('updated visible links');
    if (previous !== null) fs.rmSync(path.join(this.dir, previous), { recursive: true, force: true });
    between('removed the old generation');
    return gen;
  }

  /** Where `..data` points, or null. */
  current(): string | null {
    try {
      return fs.readlinkSync(path.join(this.dir, '..data'));
    } catch {
      return null;
    }
  }
}

/** Fixture content: a string, or `{text|hex, repeat, prefix, suffix}`. */
export function bytesOf(v: unknown): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  const o = v as Record<string, unknown>;
  onlyFields(o, ['text', 'hex', 'repeat', 'prefix', 'suffix', 'path', 'type']);
  let unit: Buffer;
  if (typeof o.text === 'string' && o.hex === undefined) unit = Buffer.from(o.text, 'utf8');
  else if (typeof o.hex === 'string' && o.text === undefined) unit = Buffer.from(o.hex, 'hex');
  else throw new Error(`content needs one of text and hex: ${JSON.stringify(o).slice(0, 80)}`);
  const repeat = o.repeat === undefined ? 1 : (o.repeat as number);
  if (!Number.isInteger(repeat) || repeat < 0) throw new Error('repeat is not a count');
  const part = (name: string) => Buffer.from((o[name] as string | undefined) ?? '', 'utf8');
  return Buffer.concat([part('prefix'), Buffer.alloc(unit.length * repeat).fill(unit.length ? unit : Buffer.from([0])), part('suffix')]);
}

export function textOf(v: unknown): string {
  return bytesOf(v).toString('utf8');
}

/** Refuses fields a reader would ignore: a misspelt section must fail, not test nothing. */
export function onlyFields(o: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new Error(`unknown field ${k}`);
  }
}

/** Waits until `cond()` holds, polling every 20 ms, at most `ms`. */
export async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}
