/**
 * The presenter side: the current key, always the one kubelet last
 * delivered (reloaded on change by the store), as a redacting SecretKey,
 * with the user name it belongs to when the rotation has `spec.usernames`,
 * and helpers that put the key on an outgoing request.
 */

import { SecretKey } from './secret';
import { Current, Snapshot, hasRole } from './snapshot';
import { KeyStore, StoreOptions } from './store';
import { ROLE_PRESENTER } from './wire';

/** Hands out the current key of a hot-reloaded presenter (or combined) Secret. */
export class Presenter {
  readonly store: KeyStore;
  readonly #ownsStore: boolean;

  /** Opens a presenter (or combined) projected-Secret directory; throws its VolumeError. */
  static open(dir: string, options: StoreOptions = {}): Presenter {
    return new Presenter(KeyStore.open(dir, options), true);
  }

  /** A presenter on a store the app shares (e.g. with a Verifier of a combined Secret). */
  static fromStore(store: KeyStore): Presenter {
    return new Presenter(store, false);
  }

  private constructor(store: KeyStore, ownsStore: boolean) {
    if (!hasRole(store.snapshot, ROLE_PRESENTER)) {
      if (ownsStore) store.close();
      throw new TypeError(`${store.dir} does not serve the presenter role`);
    }
    this.store = store;
    this.#ownsStore = ownsStore;
  }

  /** The snapshot in use. */
  get snapshot(): Snapshot {
    return this.store.snapshot;
  }

  /** The key to send now, with its version and user name (one consistent triple). */
  current(): Current {
    // Every snapshot of a presenter Secret has a key: loading requires it.
    return this.store.snapshot.current!;
  }

  /** The key to send now. */
  key(): SecretKey {
    return this.current().key;
  }

  /** The current key's version. */
  version(): bigint {
    return this.current().version;
  }

  /**
   * The current version's user name, `null` when it has none. Not secret:
   * fine to log. To send it with the key, take both from `current()`.
   */
  username(): string | null {
    return this.current().username;
  }

  /**
   * Headers that carry the current key: `{authorization: 'Bearer <key>'}`
   * by default, or `{[header]: '<key>'}` for another header. The values
   * are key material: put them on the request, never in a log.
   */
  headers(header = 'authorization'): Record<string, string> {
    const name = header.toLowerCase();
    const key = this.key().expose();
    return { [name]: name === 'authorization' ? `Bearer ${key}` : key };
  }

  /** Stops polling, if this presenter opened the store. */
  close(): void {
    if (this.#ownsStore) this.store.close();
  }
}
