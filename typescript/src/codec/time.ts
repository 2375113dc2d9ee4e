/**
 * Instants to the nanosecond, and the contract's `date-time`: RFC 3339
 * (section 5.6) with an upper-case `T` and `Z`, at most nine fraction
 * digits, no leap second, between 0000-01-01T00:00:00Z and
 * 9999-12-30T22:00:00.999999999Z. A JavaScript `Date` holds milliseconds
 * only, so instants are kept as whole seconds and nanoseconds.
 */

import { Refusal } from './common';

const NANOS = 1_000_000_000;

/** The first instant a value may hold, in seconds since the epoch. */
export const EARLIEST_SECOND = -62_167_219_200;
/** The last second a value may hold (9999-12-30T22:00:00Z). */
export const LATEST_SECOND = 253_402_207_200;

/** An instant: seconds since 1970-01-01T00:00:00Z and nanoseconds. */
export class Instant {
  /** Whole seconds since the epoch (negative before 1970). */
  readonly seconds: number;
  /** 0 to 999999999. */
  readonly nanos: number;

  constructor(seconds: number, nanos = 0) {
    if (!Number.isSafeInteger(seconds) || !Number.isInteger(nanos) || nanos < 0 || nanos >= NANOS) {
      throw new RangeError('an instant needs whole seconds and 0 to 999999999 nanoseconds');
    }
    this.seconds = seconds;
    this.nanos = nanos;
  }

  /** The instant `ms` milliseconds after the epoch (`Date.now()`). */
  static fromMillis(ms: number): Instant {
    const seconds = Math.floor(ms / 1000);
    return new Instant(seconds, Math.min(NANOS - 1, Math.round((ms - seconds * 1000) * 1_000_000)));
  }

  /** This instant rounded to the nearest second (half up). */
  roundToSecond(): Instant {
    return new Instant(this.seconds + (this.nanos >= NANOS / 2 ? 1 : 0));
  }

  compare(other: Instant): number {
    return this.seconds - other.seconds || this.nanos - other.nanos;
  }

  /** RFC 3339 in UTC with `Z`, a fraction only when not zero, no trailing zeros. */
  toString(): string {
    const days = Math.floor(this.seconds / 86_400);
    const rest = this.seconds - days * 86_400;
    const [y, m, d] = civilFromDays(days);
    const two = (n: number) => String(n).padStart(2, '0');
    const date = `${String(y).padStart(4, '0')}-${two(m)}-${two(d)}`;
    const time = `${two(Math.floor(rest / 3600))}:${two(Math.floor(rest / 60) % 60)}:${two(rest % 60)}`;
    const fraction = this.nanos === 0 ? '' : `.${String(this.nanos).padStart(9, '0').replace(/0+$/, '')}`;
    return `${date}T${time}${fraction}Z`;
  }

  toJSON(): string {
    return this.toString();
  }
}

const SHAPE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/**
 * Reads a `date-time`. A text off the grammar (fields out of their ranges
 * included) is `syntax`; a day the calendar lacks, or an instant outside
 * the range, is `out-of-range`.
 */
export function parseTime(text: string): Instant {
  const m = SHAPE.exec(text);
  const n = (i: number) => Number(m?.[i] ?? '0');
  const shapeOk =
    m !== null &&
    n(2) >= 1 && n(2) <= 12 &&
    n(3) >= 1 && n(3) <= 31 &&
    n(4) <= 23 && n(5) <= 59 && n(6) <= 59 &&
    (m[8] === 'Z' || (n(10) <= 23 && n(11) <= 59));
  if (!shapeOk) throw new Refusal('syntax', 'time is not an RFC 3339 date-time');
  const [year, month, day] = [n(1), n(2), n(3)];
  if (day > daysInMonth(year, month)) throw new Refusal('out-of-range', 'time is out of range');
  const offset = m[8] === 'Z' ? 0 : (m[9] === '-' ? -1 : 1) * (n(10) * 3600 + n(11) * 60);
  const seconds = daysFromCivil(year, month, day) * 86_400 + n(4) * 3600 + n(5) * 60 + n(6) - offset;
  if (seconds < EARLIEST_SECOND || seconds > LATEST_SECOND) {
    throw new Refusal('out-of-range', 'time is out of range');
  }
  const nanos = Number((m[7] ?? '').padEnd(9, '0'));
  return new Instant(seconds, nanos);
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The date of a day since 1970-01-01 (the inverse of daysFromCivil). */
function civilFromDays(z: number): [number, number, number] {
  const zz = z + 719_468;
  const era = Math.floor(zz / 146_097);
  const doe = zz - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}
