/**
 * IP addresses as the traffic annotation's `client` holds them: RFC 3986's
 * `IPv4address` (dotted decimal, no leading zeros) or `IPv6address` (no
 * zone, no brackets), written in canonical form (RFC 5952, an IPv4-mapped
 * address as `::ffff:a.b.c.d`).
 */

/** The canonical text of `text` as an IP address, or `null` when it is not one. */
export function canonicalIp(text: string): string | null {
  if (text.includes(':')) {
    const groups = ipv6Groups(text);
    return groups === null ? null : formatIpv6(groups);
  }
  const octets = ipv4Octets(text);
  return octets === null ? null : octets.join('.');
}

const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function ipv4Octets(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const octets = parts.map((p) => (OCTET.test(p) ? Number(p) : 256));
  return octets.every((o) => o <= 255) ? octets : null;
}

/** The groups of one side of `::` (an IPv4 tail allowed when `last`). */
function sideGroups(side: string, last: boolean): number[] | null {
  if (side === '') return [];
  const parts = side.split(':');
  const out: number[] = [];
  for (const [i, p] of parts.entries()) {
    if (last && i === parts.length - 1 && p.includes('.')) {
      const v4 = ipv4Octets(p);
      if (v4 === null) return null;
      out.push(v4[0]! * 256 + v4[1]!, v4[2]! * 256 + v4[3]!);
    } else if (HEX_GROUP.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return null;
    }
  }
  return out;
}

function ipv6Groups(text: string): number[] | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  if (halves.length === 1) {
    const all = sideGroups(text, true);
    return all !== null && all.length === 8 ? all : null;
  }
  const head = sideGroups(halves[0]!, false);
  const tail = sideGroups(halves[1]!, true);
  // `::` stands for at least one group of zeros.
  if (head === null || tail === null || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function formatIpv6(g: number[]): string {
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  }
  // The longest run of two or more zero groups (the first of equals) becomes `::`.
  let [best, bestLen] = [-1, 1];
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
