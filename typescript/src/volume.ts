/**
 * Reading a mounted Secret consistently (docs/wire.md, "reading
 * consistently").
 *
 * kubelet writes a new timestamped directory, then renames a new `..data`
 * symlink over the old one. Reading every file through one resolved `..data`
 * target gives a consistent set even while kubelet swaps, and the target's
 * name is a cheap change token (one `readlink`). A plain directory (local
 * development) is read as it is, without a token. Files are read
 * synchronously: they are a few small files on a tmpfs, and a read that no
 * other callback can interleave with keeps each snapshot whole.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';

import { DATA_LINK } from './wire';

/** Largest metadata file read (`rotation`, `accepted`, `v<N>.sha256`, …). */
export const MAX_TEXT_FILE = 4096;

/** Reads repeated when kubelet swapped in between, before `unstable`. */
export const READ_ATTEMPTS = 5;

/** The error classes of docs/wire.md. */
export type VolumeErrorClass = 'missing' | 'malformed' | 'io' | 'unstable';

/** Why a directory could not be read. Names the file and class, never content. */
export class VolumeError extends Error {
  readonly errorClass: VolumeErrorClass;
  /** The file (or directory) concerned. */
  readonly file: string;

  constructor(errorClass: VolumeErrorClass, file: string, reason: string) {
    super(`${file}: ${reason} (${errorClass})`);
    this.name = 'VolumeError';
    this.errorClass = errorClass;
    this.file = file;
  }
}

function ioError(file: string, e: unknown): VolumeError {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? 'error';
  return new VolumeError('io', file, `cannot be read (${code})`);
}

/**
 * Where `dir/..data` points, or `null` for a plain directory (no `..data`,
 * or one that is not a symlink).
 */
export function generation(dir: string): string | null {
  const link = path.join(dir, DATA_LINK);
  try {
    return fs.readlinkSync(link);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw ioError(link, e);
  }
}

/** The files of one generation, read through its resolved directory. */
export class Files {
  constructor(readonly root: string) {}

  path(name: string): string {
    return path.join(this.root, name);
  }

  /**
   * A file's bytes, or `null` when it does not exist. A file longer than
   * `max` bytes is malformed and never read whole.
   */
  read(name: string, max: number): Buffer | null {
    const file = this.path(name);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw ioError(file, e);
    }
    const buf = Buffer.alloc(max + 1);
    let size = 0;
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, size, buf.length - size, null);
        if (n === 0 || (size += n) === buf.length) break;
      }
    } catch (e) {
      buf.fill(0);
      throw ioError(file, e);
    } finally {
      fs.closeSync(fd);
    }
    if (size > max) {
      buf.fill(0);
      throw this.malformed(name, `is larger than ${max} bytes`);
    }
    return buf.subarray(0, size);
  }

  /** A small text file (metadata, never a key) without the ASCII whitespace around it. */
  text(name: string): string | null {
    const bytes = this.read(name, MAX_TEXT_FILE);
    if (bytes === null) return null;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw this.malformed(name, 'is not UTF-8');
    }
    return trimAscii(text);
  }

  /** A required text file. */
  required(name: string): string {
    const text = this.text(name);
    if (text === null) throw this.missing(name);
    return text;
  }

  missing(name: string): VolumeError {
    return new VolumeError('missing', this.path(name), 'is missing');
  }

  /** An error about `name`; the reason never quotes the content. */
  malformed(name: string, reason: string): VolumeError {
    return new VolumeError('malformed', this.path(name), reason);
  }
}

/** `text` without SP, HTAB, LF, CR and FF around it. */
export function trimAscii(text: string): string {
  return text.replace(/^[ \t\n\r\f]+|[ \t\n\r\f]+$/g, '');
}

/**
 * Reads `dir` with `read`, retrying when kubelet swapped the volume in
 * between, so the result never mixes two generations. An error seen during
 * a swap is discarded (kubelet may have deleted the old directory). Returns
 * the value and its generation.
 */
export function readConsistent<T>(dir: string, read: (files: Files) => T): { value: T; generation: string | null } {
  for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    const before = generation(dir);
    const files = new Files(before === null ? dir : path.join(dir, before));
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: read(files) };
    } catch (error) {
      outcome = { error };
    }
    if (generation(dir) !== before) continue;
    if ('error' in outcome) throw outcome.error;
    return { value: outcome.value, generation: before };
  }
  throw new VolumeError('unstable', dir, `kept changing on each of ${READ_ATTEMPTS} reads`);
}
