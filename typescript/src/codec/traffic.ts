/**
 * Traffic: what a verifier checked since its process started, per version
 * (`<rotation>.keyrotor.dev/traffic`).
 *
 * ```abnf
 * traffic   = part *( ";" part )          ; at most 65536 bytes
 * part      = accepted / retired / client / extension
 * accepted  = "accepted=" [ counts ]
 * retired   = "retired=" [ counts ]
 * client    = "client=" ( IPv4address / IPv6address )
 * extension = ext-name "=" *( %x20-3A / %x3C-7E )
 * ext-name  = 1*( ALPHA / DIGIT / "-" )
 * counts    = count *( "," count )        ; at most 512 per list
 * count     = version ":" number
 * ```
 */

import { Lenient, Refusal, ascending, checkLength, decimal, ows, pieces, refusing, splitOnce } from './common';
import { canonicalIp } from './ip';

/** Counts of checked presentations, per version. */
export interface Traffic {
  accepted: Map<bigint, bigint>;
  /** Presentations of a version this verifier once accepted and no longer does. */
  retired: Map<bigint, bigint>;
  /** Who last presented a retired version (canonical text), or `null`. */
  client: string | null;
}

const EXTENSION_NAME = /^[A-Za-z0-9-]+$/;
const EXTENSION_VALUE = /^[\x20-\x3a\x3c-\x7e]*$/;

export const Traffic = {
  NAME: 'traffic',
  MAX_LENGTH: 64 * 1024,
  MAX_COUNTS: 512,

  /** Reads a value; anything but the grammar throws a WireError. */
  parse(text: string): Traffic {
    return refusing(Traffic.NAME, text, () => {
      checkLength(text, Traffic.MAX_LENGTH);
      let accepted: Map<bigint, bigint> | null = null;
      let retired: Map<bigint, bigint> | null = null;
      let client: string | null = null;
      for (const part of text.split(';')) {
        const nv = splitOnce(part, '=');
        if (nv === null) throw new Refusal('syntax', 'a part is not <name>=<value>');
        const [name, value] = nv;
        if (name === 'accepted' || name === 'retired') {
          const counts = strictCounts(value);
          if ((name === 'accepted' ? accepted : retired) !== null) throw new Refusal('duplicate', 'a part appears twice');
          if (name === 'accepted') accepted = counts;
          else retired = counts;
        } else if (name === 'client') {
          const ip = canonicalIp(value);
          if (ip === null) throw new Refusal('syntax', 'client is not an IP address');
          if (client !== null) throw new Refusal('duplicate', 'client appears twice');
          client = ip;
        } else if (!EXTENSION_NAME.test(name) || !EXTENSION_VALUE.test(value)) {
          throw new Refusal('syntax', 'an extension is not a name and printable ASCII');
        }
      }
      return { accepted: accepted ?? new Map(), retired: retired ?? new Map(), client };
    });
  },

  /** Reads what it can; refuses only a value over the caps. */
  parseLenient(text: string): Lenient<Traffic> {
    return refusing(Traffic.NAME, text, () => {
      checkLength(text, Traffic.MAX_LENGTH);
      const t: Traffic = { accepted: new Map(), retired: new Map(), client: null };
      let skipped = 0;
      for (const part of text.split(';')) {
        const nv = splitOnce(part, '=');
        if (nv === null) {
          skipped++;
          continue;
        }
        const name = ows(nv[0]);
        if (name === 'accepted' || name === 'retired') {
          const [counts, bad] = lenientCounts(nv[1]);
          t[name] = counts;
          skipped += bad;
        } else if (name === 'client') {
          t.client = canonicalIp(ows(nv[1]));
          if (t.client === null) skipped++;
        }
      }
      return { value: t, skipped };
    });
  },

  /** The written form: `accepted=…;retired=…[;client=…]`, versions ascending. */
  format(t: Traffic): string {
    const counts = (m: Map<bigint, bigint>) =>
      [...m.keys()].sort(ascending).map((v) => `${v}:${m.get(v)}`).join(',');
    const client = t.client === null ? '' : `;client=${t.client}`;
    return `accepted=${counts(t.accepted)};retired=${counts(t.retired)}${client}`;
  },
} as const;

function strictCounts(list: string): Map<bigint, bigint> {
  const out = new Map<bigint, bigint>();
  for (const piece of pieces(list, Traffic.MAX_COUNTS)) {
    const vn = splitOnce(piece, ':');
    if (vn === null) throw new Refusal('syntax', 'a count is not <version>:<count>');
    const version = decimal(vn[0], 'version');
    const count = decimal(vn[1], 'count');
    if (out.has(version)) throw new Refusal('duplicate', 'a version appears twice');
    out.set(version, count);
  }
  return out;
}

function lenientCounts(list: string): [Map<bigint, bigint>, number] {
  const out = new Map<bigint, bigint>();
  let skipped = 0;
  for (const piece of pieces(ows(list), Traffic.MAX_COUNTS)) {
    const vn = splitOnce(piece, ':');
    try {
      if (vn === null) throw new Refusal('syntax', '');
      out.set(decimal(ows(vn[0]), ''), decimal(ows(vn[1]), ''));
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      skipped++;
    }
  }
  return [out, skipped];
}
