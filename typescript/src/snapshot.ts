/**
 * The contents of one projected-Secret directory as typed values
 * (docs/wire.md, "files" and "what a reader requires").
 *
 * Verifier digests are decoded and plain verifier keys hashed at load time,
 * so verification compares fixed-size digests only. The digests live in a
 * module-private WeakMap: nothing that prints a snapshot can reach them.
 */

import { createHash } from 'node:crypto';

import { parseNumber } from './codec/common';
import { SecretKey, MAX_KEY_LENGTH, isKeyShaped } from './secret';
import { Files, readConsistent } from './volume';
import * as w from './wire';

/** What every projected Secret says about itself. */
export interface Meta {
  /** The rotation's name. */
  readonly rotation: string;
  /** The roles the Secret serves, in file order (`verifier`, `presenter`, …). */
  readonly roles: readonly string[];
  /** The Secret's revision: it grows with every change. */
  readonly revision: bigint;
}

/**
 * The presenter's current key, its version and the user name the key
 * belongs to, all from one read: a key never comes with another version's
 * user name.
 */
export interface Current {
  readonly version: bigint;
  readonly key: SecretKey;
  /** The version's user name (`spec.usernames`), `null` when it has none. Not secret. */
  readonly username: string | null;
}

/** One loaded generation of a projected-Secret directory. */
export interface Snapshot extends Meta {
  /** Accepted versions, ascending (empty unless the Secret serves `verifier`). */
  readonly accepted: readonly bigint[];
  /** The current key (`null` unless the Secret serves `presenter`). */
  readonly current: Current | null;
  /** Where `..data` pointed when the directory was read; `null` for a plain directory. */
  readonly generation: string | null;
}

/** A version's SHA-256 digest. */
export interface Digest {
  readonly version: bigint;
  readonly digest: Buffer;
}

const digestsOf = new WeakMap<Snapshot, readonly Digest[]>();

/** The accepted versions' digests of a snapshot (internal: never print them). */
export function digests(snapshot: Snapshot): readonly Digest[] {
  return digestsOf.get(snapshot) ?? [];
}

/** Whether the snapshot's Secret serves `role`. */
export function hasRole(meta: Meta, role: string): boolean {
  return meta.roles.includes(role);
}

/** Reads the metadata only (what the reporter needs; never opens a key). */
export function loadMeta(dir: string): Meta {
  return readConsistent(dir, readMeta).value;
}

/** Loads `dir` whole and consistently (never half old, half new). */
export function loadSnapshot(dir: string): Snapshot {
  const { value, generation } = readConsistent(dir, readSnapshot);
  const snapshot: Snapshot = Object.freeze({ ...value.snapshot, generation });
  digestsOf.set(snapshot, value.digests);
  return snapshot;
}

const ROLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const USERNAME = new RegExp(`^[\\x21-\\x7e]{1,${w.MAX_USERNAME_LENGTH}}$`);

function readMeta(files: Files): Meta {
  const rotation = files.required(w.ROTATION_FILE);
  if (rotation === '') throw files.malformed(w.ROTATION_FILE, 'is empty');
  const roles = list(files.required(w.ROLE_FILE));
  if (roles.length === 0) throw files.malformed(w.ROLE_FILE, 'names no role');
  if (!roles.every((r) => ROLE.test(r))) throw files.malformed(w.ROLE_FILE, 'is not a list of roles');
  return { rotation, roles: Object.freeze(roles), revision: numberFile(files, w.REVISION_FILE) };
}

function readSnapshot(files: Files): { snapshot: Omit<Snapshot, 'generation'>; digests: Digest[] } {
  const meta = readMeta(files);
  let accepted: bigint[] = [];
  const found: Digest[] = [];
  if (hasRole(meta, w.ROLE_VERIFIER)) {
    accepted = acceptedVersions(files);
    for (const version of accepted) found.push({ version, digest: acceptedDigest(files, version) });
  }
  let current: Current | null = null;
  if (hasRole(meta, w.ROLE_PRESENTER)) {
    const version = numberFile(files, w.VERSION_FILE);
    const key = keyFile(files, w.KEY_FILE);
    if (key === null) throw files.missing(w.KEY_FILE);
    current = Object.freeze({ version, key, username: usernameFile(files) });
  }
  return { snapshot: { ...meta, accepted: Object.freeze(accepted), current }, digests: found };
}

/** The optional `username` file: `null` when absent; present, it must be a user name. */
function usernameFile(files: Files): string | null {
  const name = files.text(w.USERNAME_FILE);
  if (name !== null && !USERNAME.test(name)) {
    throw files.malformed(w.USERNAME_FILE, 'is not 1 to 63 bytes of printable ASCII without spaces');
  }
  return name;
}

/** The items of a comma-separated list, whitespace around each ignored, empty ones skipped. */
function list(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.replace(/^[ \t\n\r\f]+|[ \t\n\r\f]+$/g, ''))
    .filter((item) => item !== '');
}

function numberFile(files: Files, name: string): bigint {
  const n = parseNumber(files.required(name));
  if (n === null) throw files.malformed(name, 'is not a number');
  return n;
}

function acceptedVersions(files: Files): bigint[] {
  const versions = new Set<bigint>();
  for (const item of list(files.required(w.ACCEPTED_FILE))) {
    const v = parseNumber(item);
    if (v === null) throw files.malformed(w.ACCEPTED_FILE, 'is not a comma-separated list of versions');
    versions.add(v);
  }
  return [...versions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * A key file: at most 1025 bytes, one trailing LF dropped, then 16 to 1024
 * bytes of printable ASCII without spaces. `null` when it does not exist.
 */
function keyFile(files: Files, name: string): SecretKey | null {
  const raw = files.read(name, MAX_KEY_LENGTH + 1);
  if (raw === null) return null;
  try {
    const bytes = raw[raw.length - 1] === 0x0a ? raw.subarray(0, raw.length - 1) : raw;
    if (!isKeyShaped(bytes)) {
      throw files.malformed(name, 'is not 16 to 1024 bytes of printable ASCII without spaces');
    }
    return new SecretKey(bytes);
  } finally {
    raw.fill(0);
  }
}

/** Version `v`'s digest: `v<N>.sha256`, or else the SHA-256 of `v<N>.key`. */
function acceptedDigest(files: Files, v: bigint): Buffer {
  const digestName = w.digestFile(v);
  const hex = files.text(digestName);
  if (hex !== null) {
    if (!/^[0-9A-Fa-f]{64}$/.test(hex)) throw files.malformed(digestName, 'is not 64 hex digits');
    return Buffer.from(hex, 'hex');
  }
  const keyName = w.plainKeyFile(v);
  const key = keyFile(files, keyName);
  if (key === null) throw files.missing(keyName);
  const bytes = key.exposeBytes();
  try {
    return createHash('sha256').update(bytes).digest();
  } finally {
    bytes.fill(0);
  }
}
