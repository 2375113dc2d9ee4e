/**
 * The revision report: `<rotation>.keyrotor.dev/<role>-revision`, the
 * revision of a role's projected Secret the process loaded, and the content
 * of the handshake file `<rotation>.<role>-revision`.
 *
 * ```abnf
 * revision-report = revision   ; 1*20DIGIT, at most 2^64 - 1, 20 bytes
 * ```
 */

import { checkLength, decimal, refusing } from './common';

export const RevisionReport = {
  /** The annotation's name in errors and fixtures. */
  NAME: 'revision report',
  /** Longest value read, in bytes (the digits of 2^64 - 1). */
  MAX_LENGTH: 20,

  /** Reads a value; anything but the grammar throws a WireError. */
  parse(text: string): bigint {
    return refusing(RevisionReport.NAME, text, () => {
      checkLength(text, RevisionReport.MAX_LENGTH);
      return decimal(text, 'revision');
    });
  },

  /** The written form: digits, no leading zeros. */
  format(revision: bigint): string {
    return revision.toString();
  },
} as const;
