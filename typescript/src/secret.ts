/**
 * {@link SecretKey}, the one type that holds key material. It redacts
 * itself wherever JavaScript turns a value into text: `String()`, template
 * literals, `util.inspect` (`console.log`), `JSON.stringify`. The bytes sit
 * in an ES private field, which no inspection shows.
 */

import { inspect } from 'node:util';

const REDACTED = 'SecretKey([redacted])';

/** The smallest and largest key, in bytes (docs/wire.md, `key`). */
export const MIN_KEY_LENGTH = 16;
export const MAX_KEY_LENGTH = 1024;

/** Whether `bytes` can be a key: 16 to 1024 bytes of printable ASCII without spaces. */
export function isKeyShaped(bytes: Uint8Array): boolean {
  if (bytes.length < MIN_KEY_LENGTH || bytes.length > MAX_KEY_LENGTH) return false;
  for (const b of bytes) if (b < 0x21 || b > 0x7e) return false;
  return true;
}

/** Whether the string `text` can be a key (checked without converting it). */
export function isKeyShapedText(text: string): boolean {
  if (text.length < MIN_KEY_LENGTH || text.length > MAX_KEY_LENGTH) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** Key material. Read it only through {@link SecretKey.expose}, where it goes on the wire. */
export class SecretKey {
  readonly #bytes: Buffer;

  /** Copies `bytes`, which must be key-shaped ({@link isKeyShaped}). */
  constructor(bytes: Uint8Array) {
    if (!isKeyShaped(bytes)) {
      throw new TypeError('a key is 16 to 1024 bytes of printable ASCII without spaces');
    }
    this.#bytes = Buffer.alloc(bytes.length);
    this.#bytes.set(bytes);
  }

  /** The key as text. Every call is a place key material leaves this type. */
  expose(): string {
    return this.#bytes.toString('latin1');
  }

  /** A copy of the key's bytes (the caller should `fill(0)` it when done). */
  exposeBytes(): Buffer {
    return Buffer.from(this.#bytes);
  }

  /** The key's length in bytes (not secret: every key of a format has it). */
  get length(): number {
    return this.#bytes.length;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }
}
