/**
 * The codecs beyond their fixtures: bounded errors, addresses, instants,
 * and round trips of generated values.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EXCERPT_CHARS, Instant, LastSeen, MAX_NUMBER, Nudge, RevisionReport, Traffic, WireError, parseNumber } from '../src/index';
import { canonicalIp } from '../src/codec/ip';

test('an error quotes a bounded, escaped prefix of the value only', () => {
  const hostile = `\u0007${'x'.repeat(100_000)}`;
  const e = (() => {
    try {
      Nudge.parse(hostile);
    } catch (err) {
      return err as WireError;
    }
    throw new Error('no error');
  })();
  assert.equal(e.errorClass, 'too-long');
  assert.ok(e.message.length < 160, e.message);
  assert.match(e.message, /\\u0007x{31}"…$/);
  assert.equal(EXCERPT_CHARS, 32);
});

test('numbers are plain digits within 64 bits', () => {
  assert.equal(parseNumber('007'), 7n);
  assert.equal(parseNumber('18446744073709551615'), MAX_NUMBER);
  for (const bad of ['', '+5', '-1', ' 5', '5 ', '1e3', '٣', '000000000000000000001', '18446744073709551616']) {
    assert.equal(parseNumber(bad), null, bad);
  }
});

test('addresses are read as RFC 3986 has them and written as RFC 5952 does', () => {
  const cases: [string, string | null][] = [
    ['10.0.0.5', '10.0.0.5'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['256.0.0.1', null],
    ['1.2.3', null],
    ['01.2.3.4', null],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0db8::0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::FFFF:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2::3', null],
    ['1:::2', null],
    [':1::2', null],
    ['12345::', null],
    ['1.2.3.4::', null],
    ['1:2:3:4:5:6::1.2.3.4', null],
    ['fe80::1%eth0', null],
    ['[::1]', null],
  ];
  for (const [text, want] of cases) assert.equal(canonicalIp(text), want, text);
});

test('instants are written in UTC, to the nanosecond, and rounded to the second on request', () => {
  assert.equal(new Instant(0).toString(), '1970-01-01T00:00:00Z');
  assert.equal(new Instant(-1, 500_000_000).toString(), '1969-12-31T23:59:59.5Z');
  assert.equal(Instant.fromMillis(Date.parse('2026-03-01T10:14:03.600Z')).roundToSecond().toString(), '2026-03-01T10:14:04Z');
  assert.equal(Instant.fromMillis(Date.parse('2026-03-01T10:14:03.499Z')).roundToSecond().toString(), '2026-03-01T10:14:03Z');
});

/** A small deterministic generator (mulberry32), so a failure repeats. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function u64(next: () => number): bigint {
  return (BigInt(Math.floor(next() * 2 ** 32)) << 32n) | BigInt(Math.floor(next() * 2 ** 32));
}

test('every generated value round-trips through its written form', () => {
  const next = random(20260301);
  for (let i = 0; i < 200; i++) {
    const revision = u64(next);
    assert.equal(RevisionReport.parse(RevisionReport.format(revision)), revision);
    const nudge = { revision, attempt: Math.floor(next() * 2 ** 32), at: new Instant(Math.floor(next() * 253_402_207_200)) };
    assert.deepEqual(Nudge.parse(Nudge.format(nudge)), nudge);
    const seen: LastSeen = new Map();
    for (let n = Math.floor(next() * 20); n > 0; n--) {
      const seconds = Math.floor(-62_167_219_200 + next() * (253_402_207_200 + 62_167_219_200));
      seen.set(u64(next), new Instant(seconds, Math.floor(next() * 1e9)));
    }
    const text = LastSeen.format(seen);
    assert.ok(text.length <= LastSeen.MAX_LENGTH);
    assert.deepEqual(LastSeen.parse(text), seen);
    assert.deepEqual(LastSeen.parseLenient(text), { value: seen, skipped: 0 });
    const t: Traffic = { accepted: new Map([[u64(next), u64(next)]]), retired: new Map(), client: next() < 0.5 ? null : '2001:db8::5' };
    assert.deepEqual(Traffic.parse(Traffic.format(t)), t);
  }
});

test('a last-seen value of 256 of the longest entries still fits its length cap', () => {
  const seen: LastSeen = new Map();
  for (let i = 0; i < LastSeen.MAX_ENTRIES; i++) seen.set(MAX_NUMBER - BigInt(i), new Instant(253_402_207_200, 999_999_999));
  const text = LastSeen.format(seen);
  assert.ok(text.length <= LastSeen.MAX_LENGTH, `${text.length}`);
  assert.equal(LastSeen.parse(text).size, LastSeen.MAX_ENTRIES);
});
