/**
 * A mounted Secret's latest good snapshot, reloaded when kubelet swaps the
 * volume, and confirmed through the handshake directory.
 *
 * Change detection polls `readlink(..data)` on a timer (1 s by default)
 * that never keeps the process alive (`unref`). A reload builds a whole new
 * snapshot and then swaps one reference: JavaScript runs no request in
 * between, so there is no moment where nothing is accepted. A failed reload
 * keeps the previous snapshot and reports the error (class and file only).
 * After every swap the handshake file says which revision the process uses.
 */

import { timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';

import { Handshake } from './handshake';
import { Snapshot, digests, loadMeta, loadSnapshot } from './snapshot';
import { VolumeError, generation } from './volume';
import { HANDSHAKE_DIR_ENV, ROLE_FILE } from './wire';

/** How often `..data` is polled by default, in milliseconds. */
export const DEFAULT_POLL_MS = 1000;

export interface StoreOptions {
  /** Milliseconds between polls of `..data`; 0 polls never (call `refresh`). Default 1000. */
  pollIntervalMs?: number;
  /**
   * The handshake directory shared with the reporter sidecar. Default: the
   * environment variable `KEYROTOR_HANDSHAKE_DIR`; `null` writes none.
   */
  handshakeDir?: string | null;
  /**
   * Called with every failure after the first load (a reload, a handshake
   * write). Errors name files and classes, never content. Default: one
   * `console.warn` per distinct failure until it recovers.
   */
  onError?: (error: Error) => void;
}

/** Called after the store switched from `previous` to `next`. */
export type ChangeListener = (next: Snapshot, previous: Snapshot) => void;

export class KeyStore {
  readonly dir: string;
  #snapshot: Snapshot;
  readonly #listeners = new Set<ChangeListener>();
  readonly #handshake: Handshake | null;
  readonly #onError: ((error: Error) => void) | undefined;
  /** Failures warned about since the last poll without one. */
  readonly #warned = new Set<string>();
  #failedThisPoll = false;
  #timer: NodeJS.Timeout | null = null;

  private constructor(dir: string, handshakeDir: string | null, options: StoreOptions) {
    this.dir = dir;
    this.#onError = options.onError;
    this.#handshake = handshakeDir ? new Handshake(handshakeDir, (e) => this.#report(e)) : null;
    if (this.#handshake !== null) {
      const meta = loadMeta(dir);
      this.#handshake.clear(meta.rotation, meta.roles);
    }
    this.#snapshot = loadSnapshot(dir);
  }

  /**
   * Loads `dir`, or throws its VolumeError: only the first load may fail the
   * process. With a handshake directory, the files an earlier process left
   * for this rotation and its roles are removed before that load.
   */
  static open(dir: string, options: StoreOptions = {}): KeyStore {
    const handshakeDir = options.handshakeDir === undefined ? process.env[HANDSHAKE_DIR_ENV] || null : options.handshakeDir;
    const store = new KeyStore(dir, handshakeDir, options);
    store.#confirm();
    const every = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    if (every > 0) {
      store.#timer = setInterval(() => store.poll(), every);
      store.#timer.unref();
    }
    return store;
  }

  /** The snapshot in use. */
  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** The handshake directory's writer, when there is one. */
  get handshake(): Handshake | null {
    return this.#handshake;
  }

  /**
   * Reloads when the volume changed (one `readlink` when it did not; a
   * plain directory is re-read and compared). Returns the new snapshot, or
   * `null` when nothing changed; throws a VolumeError when the reload failed
   * (the previous snapshot stays in use).
   */
  refresh(): Snapshot | null {
    const old = this.#snapshot;
    const now = generation(this.dir);
    if (now !== null && now === old.generation) return null;
    const next = loadSnapshot(this.dir);
    const lost = old.roles.filter((r) => !next.roles.includes(r));
    if (lost.length > 0) {
      // Verifiers and presenters were built for these roles: keep serving them.
      throw new VolumeError('malformed', path.join(this.dir, ROLE_FILE), `no longer names ${lost.join(', ')}`);
    }
    if (next.generation === null && old.generation === null && sameContent(next, old)) return null;
    this.#snapshot = next;
    for (const listener of this.#listeners) {
      try {
        listener(next, old);
      } catch (e) {
        this.#report(e instanceof Error ? e : new Error('a change listener failed'));
      }
    }
    this.#confirm();
    return next;
  }

  /** One poll: refresh, report a failure, retry handshake writes. Never throws. */
  poll(): void {
    this.#failedThisPoll = false;
    try {
      this.refresh();
    } catch (e) {
      this.#report(e instanceof Error ? e : new Error('reload failed'));
    }
    this.#handshake?.retry();
    if (!this.#failedThisPoll) this.#warned.clear();
  }

  /** Calls `listener` after every switch to a new snapshot; returns its removal. */
  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops polling. The last snapshot stays readable. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Hands a failure to `onError`, or warns once per distinct failure until a clean poll. */
  #report(error: Error): void {
    this.#failedThisPoll = true;
    if (this.#onError !== undefined) return this.#onError(error);
    if (this.#warned.has(error.message)) return;
    this.#warned.add(error.message);
    warn(error);
  }

  #confirm(): void {
    const s = this.#snapshot;
    this.#handshake?.confirm(s.rotation, s.roles, s.revision);
  }
}

/** Whether two snapshots of a plain directory hold the same things. */
function sameContent(a: Snapshot, b: Snapshot): boolean {
  const da = digests(a);
  const db = digests(b);
  const sameKey =
    a.current === null || b.current === null
      ? a.current === b.current
      : a.current.version === b.current.version &&
        a.current.username === b.current.username &&
        keysEqual(a.current.key.exposeBytes(), b.current.key.exposeBytes());
  return (
    a.rotation === b.rotation &&
    a.revision === b.revision &&
    a.roles.join(',') === b.roles.join(',') &&
    da.length === db.length &&
    da.every((d, i) => d.version === db[i]!.version && d.digest.equals(db[i]!.digest)) &&
    sameKey
  );
}

function keysEqual(x: Buffer, y: Buffer): boolean {
  const same = x.length === y.length && timingSafeEqual(x, y);
  x.fill(0);
  y.fill(0);
  return same;
}

function warn(error: Error): void {
  console.warn(`keyrotor: ${error.message}`);
}
