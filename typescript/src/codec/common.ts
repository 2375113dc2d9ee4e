/**
 * What every annotation codec shares (docs/wire.md, "the pod annotations"):
 * the typed error with its language-neutral class, the bounded excerpt an
 * error may quote, and the grammar of numbers.
 *
 * Annotations are written by pods, so every parser is written for hostile
 * input: it checks the length before it looks at the text, caps the number
 * of entries, never throws anything but a {@link WireError}, and quotes at
 * most {@link EXCERPT_CHARS} characters of the input.
 */

/** How many characters of a refused value an error quotes. */
export const EXCERPT_CHARS = 32;

/** The largest number of the contract: 2^64 - 1. */
export const MAX_NUMBER = 18446744073709551615n;

/** The error classes of docs/wire.md, as the fixtures name them. */
export type WireErrorClass = 'too-long' | 'too-many' | 'syntax' | 'out-of-range' | 'duplicate';

/** A value read leniently, with how many entries were skipped. */
export interface Lenient<T> {
  value: T;
  skipped: number;
}

/**
 * Why an annotation value was refused. Names the annotation and quotes an
 * escaped prefix of the value (annotations are not secret, but may be
 * hostile: long, or full of control characters).
 */
export class WireError extends Error {
  /** `revision report`, `nudge`, `last-seen` or `traffic`. */
  readonly annotation: string;
  readonly errorClass: WireErrorClass;

  constructor(annotation: string, errorClass: WireErrorClass, reason: string, input: string) {
    super(`malformed ${annotation} value (${errorClass}: ${reason}): ${excerpt(input)}`);
    this.name = 'WireError';
    this.annotation = annotation;
    this.errorClass = errorClass;
  }
}

/** An error class and its reason, before the annotation is known. */
export class Refusal {
  constructor(
    readonly errorClass: WireErrorClass,
    readonly reason: string,
  ) {}

  /** The error for `annotation`'s value `input`. */
  for(annotation: string, input: string): WireError {
    return new WireError(annotation, this.errorClass, this.reason, input);
  }
}

/** At most {@link EXCERPT_CHARS} characters of `input`, quoted and escaped. */
export function excerpt(input: string): string {
  const chars = Array.from(input.slice(0, EXCERPT_CHARS * 2)).slice(0, EXCERPT_CHARS);
  const head = chars.join('');
  const escaped = JSON.stringify(head).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return head.length < input.length ? `${escaped}…` : escaped;
}

/** Throws `too-long` when `text` is longer than `max` bytes. */
export function checkLength(text: string, max: number): void {
  // A UTF-16 length over 3 * max is over max bytes whatever the text.
  if (text.length > max || Buffer.byteLength(text, 'utf8') > max) {
    throw new Refusal('too-long', `longer than ${max} bytes`);
  }
}

/** `text` without the spaces and tabs around it (the lenient readings). */
export function ows(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

const DIGITS = /^[0-9]{1,20}$/;

/**
 * `1*20DIGIT`, at most 2^64 - 1: no sign, no spaces; leading zeros are
 * read (`007` is 7). Throws `syntax` before `out-of-range`.
 */
export function decimal(text: string, what: string): bigint {
  if (!DIGITS.test(text)) throw new Refusal('syntax', `${what} is not a number`);
  const n = BigInt(text);
  if (n > MAX_NUMBER) throw new Refusal('out-of-range', `${what} is out of range`);
  return n;
}

/** Every number of the contract, or `null` when `text` is not one. */
export function parseNumber(text: string): bigint | null {
  try {
    return decimal(text, 'number');
  } catch {
    return null;
  }
}

/** The comma-separated pieces of `text` within `max` (none for ""). */
export function pieces(text: string, max: number): string[] {
  if (text === '') return [];
  let commas = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0x2c) commas++;
  if (commas + 1 > max) throw new Refusal('too-many', `more than ${max} entries`);
  return text.split(',');
}

/** Splits at the first `sep`; `null` when there is none. */
export function splitOnce(text: string, sep: string): [string, string] | null {
  const at = text.indexOf(sep);
  return at < 0 ? null : [text.slice(0, at), text.slice(at + sep.length)];
}

/** Compares versions (or any bigints) ascending. */
export function ascending(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Runs `parse`, turning a {@link Refusal} into `annotation`'s error. */
export function refusing<T>(annotation: string, input: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof Refusal) throw e.for(annotation, input);
    throw e;
  }
}
