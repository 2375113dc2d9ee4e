/**
 * The handshake directory (docs/wire.md, "the handshake directory"): the
 * library tells the `keyrotor reporter --handshake` sidecar what its process
 * loaded, so that confirmation means "the process uses it" rather than "the
 * volume holds it".
 *
 * Files are written atomically (a dot-prefixed temporary file renamed over
 * the final name) and only when their content changes. A write that fails
 * is reported and retried on the next poll; the file then still says what
 * an earlier load said, never more than the process loaded.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';

import { ROLE_PRESENTER, ROLE_VERIFIER, handshakeLastSeenFile, handshakeRevisionFile } from './wire';

/** A handshake file could not be written or removed. Names the path, never content. */
export class HandshakeError extends Error {
  readonly errorClass = 'io';
  readonly file: string;

  constructor(file: string, reason: string) {
    super(`${file}: ${reason} (io)`);
    this.name = 'HandshakeError';
    this.file = file;
  }
}

function cannot(file: string, what: string, e: unknown): HandshakeError {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? 'error';
  return new HandshakeError(file, `cannot ${what} the handshake file: ${code}`);
}

/** The roles a library confirms through the handshake. */
export const HANDSHAKE_ROLES: readonly string[] = [ROLE_VERIFIER, ROLE_PRESENTER];

/** A rotation name that is safe as the start of a file name. */
const SAFE_ROTATION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export class Handshake {
  /** file name → content the directory holds (as far as this process knows). */
  readonly #written = new Map<string, string>();
  /** file name → content still to write (a failed write). */
  readonly #pending = new Map<string, string>();

  constructor(
    readonly dir: string,
    private readonly report: (error: Error) => void,
  ) {}

  /** Whether files for `rotation` can be named safely. */
  static servesRotation(rotation: string): boolean {
    return SAFE_ROTATION.test(rotation);
  }

  /** Removes the files of `rotation` and `roles` left by an earlier process. */
  clear(rotation: string, roles: readonly string[]): void {
    if (!this.#check(rotation)) return;
    const names = roles.filter((r) => HANDSHAKE_ROLES.includes(r)).map((r) => handshakeRevisionFile(rotation, r));
    if (roles.includes(ROLE_VERIFIER)) names.push(handshakeLastSeenFile(rotation));
    for (const name of names) {
      const file = path.join(this.dir, name);
      try {
        fs.unlinkSync(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.report(cannot(file, 'remove', e));
      }
      this.#written.delete(name);
      this.#pending.delete(name);
    }
  }

  /** Says that the process now uses `revision` of `rotation`'s Secret for `roles`. */
  confirm(rotation: string, roles: readonly string[], revision: bigint): void {
    if (!this.#check(rotation)) return;
    for (const role of roles) {
      if (HANDSHAKE_ROLES.includes(role)) this.set(handshakeRevisionFile(rotation, role), revision.toString());
    }
  }

  /** Writes `content` to `name` unless the directory already holds it. */
  set(name: string, content: string): void {
    if (this.#written.get(name) === content) {
      this.#pending.delete(name);
      return;
    }
    this.#pending.set(name, content);
    this.#write(name, content);
  }

  /** Writes what earlier attempts could not. */
  retry(): void {
    for (const [name, content] of [...this.#pending]) this.#write(name, content);
  }

  #write(name: string, content: string): void {
    const file = path.join(this.dir, name);
    const tmp = path.join(this.dir, `.${name}.tmp-${process.pid}`);
    try {
      fs.writeFileSync(tmp, content, { mode: 0o644 });
      fs.renameSync(tmp, file);
      this.#written.set(name, content);
      this.#pending.delete(name);
    } catch (e) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // Nothing was left behind.
      }
      this.report(cannot(file, 'write', e));
    }
  }

  #check(rotation: string): boolean {
    if (Handshake.servesRotation(rotation)) return true;
    this.report(new HandshakeError(this.dir, 'the rotation name cannot name a handshake file'));
    return false;
  }
}
