/**
 * The verifier side: is a presented key one of the accepted versions, and
 * which? (docs/wire.md, "verifying a presented key").
 *
 * A value that cannot be a key is refused before hashing. Otherwise its
 * SHA-256 is compared with every accepted digest by `crypto.timingSafeEqual`,
 * without stopping at a match, and the matching version is selected with
 * arithmetic masks, so timing tells neither which bytes matched nor which
 * version. Digests of versions seen accepted and then retired are
 * remembered (never accepted) to tell a client that missed a rotation
 * (`retired`) from a wrong key (`unknown`).
 *
 * In Traffic mode the verifier records when each version was last presented
 * and writes `<rotation>.last-seen` to the handshake directory, to the
 * second, at most every few seconds and only when it changed.
 */

import { createHash, timingSafeEqual } from 'node:crypto';

import { ascending } from './codec/common';
import { LastSeen } from './codec/last-seen';
import { Instant } from './codec/time';
import { Traffic } from './codec/traffic';
import { isKeyShaped, isKeyShapedText } from './secret';
import { Digest, Snapshot, digests, hasRole } from './snapshot';
import { KeyStore, StoreOptions } from './store';
import { ROLE_VERIFIER, handshakeLastSeenFile } from './wire';

/** How many retired versions a verifier remembers by default. */
export const RETIRED_MEMORY = 8;
/** Default milliseconds between last-seen writes. */
export const DEFAULT_LAST_SEEN_MS = 5000;

/** What a presented key is. */
export type Check =
  /** An accepted version: let the request through. */
  | { readonly status: 'accepted'; readonly version: bigint }
  /** A version this verifier accepted once and no longer does. */
  | { readonly status: 'retired'; readonly version: bigint }
  /** Not a key of any version this verifier knows. */
  | { readonly status: 'unknown' };

export interface VerifierOptions extends StoreOptions {
  /** Traffic mode: write `<rotation>.last-seen` to the handshake directory. Default false. */
  lastSeen?: boolean;
  /** Milliseconds between last-seen writes (only when it changed). Default 5000. */
  lastSeenIntervalMs?: number;
  /** How many retired versions to remember. Default 8. */
  retiredMemory?: number;
}

const UNKNOWN: Check = Object.freeze({ status: 'unknown' });

/** Verifies presented keys against a hot-reloaded verifier (or combined) Secret. */
export class Verifier {
  readonly store: KeyStore;
  readonly #ownsStore: boolean;
  readonly #memory: number;
  /** Digests of versions seen accepted, then retired, by version. */
  readonly #retired = new Map<bigint, Buffer>();
  /** Milliseconds since the epoch at which each accepted version was last presented. */
  readonly #seen = new Map<bigint, number>();
  readonly #acceptedCounts = new Map<bigint, number>();
  readonly #retiredCounts = new Map<bigint, number>();
  readonly #unsubscribe: () => void;
  #lastSeenTimer: NodeJS.Timeout | null = null;

  /** Opens a verifier (or combined) projected-Secret directory; throws its VolumeError. */
  static open(dir: string, options: VerifierOptions = {}): Verifier {
    return new Verifier(KeyStore.open(dir, options), options, true);
  }

  /** A verifier on a store the app shares (e.g. with a Presenter of a combined Secret). */
  static fromStore(store: KeyStore, options: VerifierOptions = {}): Verifier {
    return new Verifier(store, options, false);
  }

  private constructor(store: KeyStore, options: VerifierOptions, ownsStore: boolean) {
    if (!hasRole(store.snapshot, ROLE_VERIFIER)) {
      if (ownsStore) store.close();
      throw new TypeError(`${store.dir} does not serve the verifier role`);
    }
    this.store = store;
    this.#ownsStore = ownsStore;
    this.#memory = options.retiredMemory ?? RETIRED_MEMORY;
    this.#unsubscribe = store.onChange((next, previous) => this.#switched(next, previous));
    if (options.lastSeen) {
      this.#lastSeenTimer = setInterval(() => this.flushLastSeen(), options.lastSeenIntervalMs ?? DEFAULT_LAST_SEEN_MS);
      this.#lastSeenTimer.unref();
    }
  }

  /** The snapshot in use. */
  get snapshot(): Snapshot {
    return this.store.snapshot;
  }

  /** Whether `presented` is accepted, retired or unknown; records accepted use. */
  check(presented: string | Uint8Array, nowMs: number = Date.now()): Check {
    const digest = digestOf(presented);
    if (digest === null) return UNKNOWN;
    const version = find(digests(this.store.snapshot), digest);
    if (version !== null) {
      const last = this.#seen.get(version);
      if (last === undefined || last < nowMs) this.#seen.set(version, nowMs);
      this.#acceptedCounts.set(version, (this.#acceptedCounts.get(version) ?? 0) + 1);
      return { status: 'accepted', version };
    }
    const retired = find([...this.#retired].map(([v, d]) => ({ version: v, digest: d })), digest);
    if (retired === null) return UNKNOWN;
    this.#retiredCounts.set(retired, (this.#retiredCounts.get(retired) ?? 0) + 1);
    return { status: 'retired', version: retired };
  }

  /** The version `presented` is, when it is accepted now; otherwise `null`. */
  verify(presented: string | Uint8Array): bigint | null {
    const c = this.check(presented);
    return c.status === 'accepted' ? c.version : null;
  }

  /** The versions this process saw accepted and then retired, ascending. */
  retiredVersions(): bigint[] {
    return [...this.#retired.keys()].sort(ascending);
  }

  /** When each accepted version was last presented, to the second. */
  lastSeen(): LastSeen {
    // Beyond the cap, the oldest versions go.
    const versions = [...this.#seen.keys()].sort(ascending).slice(-LastSeen.MAX_ENTRIES);
    const out: LastSeen = new Map();
    for (const v of versions) {
      out.set(v, Instant.fromMillis(this.#seen.get(v)!).roundToSecond());
    }
    return out;
  }

  /** What this verifier checked since it started (the traffic annotation's value). */
  traffic(): Traffic {
    const counts = (m: Map<bigint, number>) => new Map([...m].map(([v, n]) => [v, BigInt(n)] as [bigint, bigint]));
    return { accepted: counts(this.#acceptedCounts), retired: counts(this.#retiredCounts), client: null };
  }

  /** Writes `<rotation>.last-seen` to the handshake directory when it changed. */
  flushLastSeen(): void {
    const handshake = this.store.handshake;
    const seen = this.lastSeen();
    if (handshake === null || seen.size === 0) return;
    handshake.set(handshakeLastSeenFile(this.store.snapshot.rotation), LastSeen.format(seen));
  }

  /** Stops the timers (after a last write of last-seen) and, if it opened it, the store. */
  close(): void {
    if (this.#lastSeenTimer !== null) {
      clearInterval(this.#lastSeenTimer);
      this.#lastSeenTimer = null;
      this.flushLastSeen();
    }
    this.#unsubscribe();
    if (this.#ownsStore) this.store.close();
  }

  /** Remembers the digests of versions that left `accepted`; forgets their use. */
  #switched(next: Snapshot, previous: Snapshot): void {
    const accepted = new Set(next.accepted);
    for (const d of digests(previous)) {
      if (!accepted.has(d.version)) this.#retired.set(d.version, d.digest);
    }
    for (const v of [...this.#retired.keys()]) if (accepted.has(v)) this.#retired.delete(v);
    for (const v of this.retiredVersions().slice(0, Math.max(0, this.#retired.size - this.#memory))) {
      this.#retired.delete(v);
    }
    for (const v of [...this.#seen.keys()]) if (!accepted.has(v)) this.#seen.delete(v);
  }
}

/** SHA-256 of a presented value that can be a key; `null` for one that cannot. */
function digestOf(presented: string | Uint8Array): Buffer | null {
  if (typeof presented === 'string') {
    if (!isKeyShapedText(presented)) return null;
    const bytes = Buffer.from(presented, 'latin1');
    try {
      return createHash('sha256').update(bytes).digest();
    } finally {
      bytes.fill(0);
    }
  }
  if (!isKeyShaped(presented)) return null;
  return createHash('sha256').update(presented).digest();
}

/**
 * The version whose digest is `digest`, comparing with every entry in
 * constant time: no early exit, and the match is selected with masks.
 */
function find(known: readonly Digest[], digest: Buffer): bigint | null {
  let found = 0;
  for (let i = 0; i < known.length; i++) {
    const mask = -Number(timingSafeEqual(known[i]!.digest, digest));
    found = (found & ~mask) | ((i + 1) & mask);
  }
  return found === 0 ? null : known[found - 1]!.version;
}
