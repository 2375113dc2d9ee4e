/**
 * The nudge: what the operator writes on a consumer pod that has not
 * confirmed a revision yet (`<rotation>.keyrotor.dev/nudge`). Consumers
 * never write it; they may read it.
 *
 * ```abnf
 * nudge        = revision "/" attempt "/" unix-seconds
 * attempt      = number     ; at most 4294967295
 * unix-seconds = number     ; at most 253402207200
 * ```
 */

import { Refusal, checkLength, decimal, refusing } from './common';
import { Instant, LATEST_SECOND } from './time';

/** One nudge of a pod. */
export interface Nudge {
  /** The revision the pod had not confirmed. */
  revision: bigint;
  /** Which nudge for that revision (1 for the first); at most 2^32 - 1. */
  attempt: number;
  /** When it was sent, in whole seconds, never before 1970. */
  at: Instant;
}

export const Nudge = {
  NAME: 'nudge',
  /** Longest value read, in bytes (three 20-digit numbers and two `/`). */
  MAX_LENGTH: 62,

  /** Reads a value; anything but the grammar throws a WireError. */
  parse(text: string): Nudge {
    return refusing(Nudge.NAME, text, () => {
      checkLength(text, Nudge.MAX_LENGTH);
      const first = text.indexOf('/');
      const second = first < 0 ? -1 : text.indexOf('/', first + 1);
      if (second < 0) throw new Refusal('syntax', 'expected three fields');
      const revision = decimal(text.slice(0, first), 'revision');
      const attempt = decimal(text.slice(first + 1, second), 'attempt');
      if (attempt > 0xffffffffn) throw new Refusal('out-of-range', 'attempt is out of range');
      const seconds = decimal(text.slice(second + 1), 'unix-seconds');
      if (seconds > BigInt(LATEST_SECOND)) throw new Refusal('out-of-range', 'unix-seconds is out of range');
      return { revision, attempt: Number(attempt), at: new Instant(Number(seconds)) };
    });
  },

  /** The written form; a fraction of a second is dropped. */
  format(nudge: Nudge): string {
    return `${nudge.revision}/${nudge.attempt}/${Math.max(0, nudge.at.seconds)}`;
  },
} as const;
