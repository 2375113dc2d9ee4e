/**
 * Last-seen: when each version was last presented to a verifier (Traffic
 * mode), `<rotation>.keyrotor.dev/last-seen` and the handshake file
 * `<rotation>.last-seen`.
 *
 * ```abnf
 * last-seen = [ seen *( "," seen ) ]   ; at most 256 entries, 16384 bytes
 * seen      = version "=" date-time
 * ```
 *
 * Written with versions ascending, each once, times in UTC. The strict
 * reading refuses anything else; the lenient one (the operator's) skips and
 * counts bad entries, allows spaces and tabs around versions and times, and
 * keeps the latest time of a repeated version.
 */

import { Lenient, Refusal, ascending, checkLength, decimal, ows, pieces, refusing, splitOnce } from './common';
import { Instant, parseTime } from './time';

/** When each version was last presented. */
export type LastSeen = Map<bigint, Instant>;

export const LastSeen = {
  NAME: 'last-seen',
  /** Longest value read, in bytes. */
  MAX_LENGTH: 16 * 1024,
  /** Most entries (comma-separated pieces, empty ones included). */
  MAX_ENTRIES: 256,

  /** Reads a value; anything but the grammar throws a WireError. */
  parse(text: string): LastSeen {
    return refusing(LastSeen.NAME, text, () => {
      const seen: LastSeen = new Map();
      for (const entry of entries(text)) {
        const parts = splitOnce(entry, '=');
        if (parts === null) throw new Refusal('syntax', 'an entry is not <version>=<time>');
        const version = decimal(parts[0], 'version');
        const at = parseTime(parts[1]);
        if (seen.has(version)) throw new Refusal('duplicate', 'a version appears twice');
        seen.set(version, at);
      }
      return seen;
    });
  },

  /** Reads what it can; refuses only a value over the caps. */
  parseLenient(text: string): Lenient<LastSeen> {
    return refusing(LastSeen.NAME, text, () => {
      const seen: LastSeen = new Map();
      let skipped = 0;
      for (const entry of entries(text)) {
        const parts = splitOnce(entry, '=');
        try {
          if (parts === null) throw new Refusal('syntax', '');
          const version = decimal(ows(parts[0]), '');
          const at = parseTime(ows(parts[1]));
          const before = seen.get(version);
          if (before === undefined || before.compare(at) < 0) seen.set(version, at);
        } catch (e) {
          if (!(e instanceof Refusal)) throw e;
          skipped++;
        }
      }
      return { value: seen, skipped };
    });
  },

  /** The written form: versions ascending, times in UTC. */
  format(seen: LastSeen): string {
    return [...seen.keys()]
      .sort(ascending)
      .map((v) => `${v}=${seen.get(v)!.toString()}`)
      .join(',');
  },
} as const;

function entries(text: string): string[] {
  checkLength(text, LastSeen.MAX_LENGTH);
  return pieces(text, LastSeen.MAX_ENTRIES);
}
