//! When the next scheduled rotation is due: a fixed interval, or a five-field
//! cron expression evaluated in an IANA time zone (the tz database is bundled
//! into the binary, so distroless images without /usr/share/zoneinfo work).

use jiff::{SignedDuration, Timestamp, civil, tz::TimeZone};

/// A validated schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Interval(SignedDuration),
    Cron(Cron),
}

impl Schedule {
    /// The first due time strictly after `last` (the start of the last cycle).
    pub fn next_after(&self, last: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Interval(d) => last.checked_add(*d).ok(),
            Schedule::Cron(c) => c.next_after(last),
        }
    }
}

/// A parsed cron expression: minute hour day-of-month month day-of-week.
#[derive(Clone, Debug)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
    tz: TimeZone,
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tz.iana_name() == other.tz.iana_name()
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parses `expr` (five fields or a macro such as `@daily`) for time zone `tz`
    /// (an IANA name; `UTC` when absent).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Cron, String> {
        let tz = match tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|_| format!("{name:?} is not an IANA time zone such as Europe/Berlin"))?,
        };
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "schedule.cron needs five fields: minute hour day-of-month month day-of-week (got {expr:?})"
            ));
        }
        let field = |i: usize, lo: u32, hi: u32, names: &[&str]| {
            parse_field(fields[i], lo, hi, names).map_err(|e| format!("{expr:?}: {e}"))
        };
        let mut weekdays = field(4, 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            source: expr.to_string(),
            minutes: field(0, 0, 59, &[])?,
            hours: field(1, 0, 23, &[])?,
            days: field(2, 1, 31, &[])?,
            months: field(3, 1, 12, &MONTHS)?,
            weekdays,
            days_restricted: fields[2] != "*",
            weekdays_restricted: fields[4] != "*",
            tz,
        })
    }

    fn day_matches(&self, date: civil::Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        // Vixie cron: when both fields are restricted, either may match.
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first matching instant strictly after `after`; `None` if nothing
    /// matches within five years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.tz.clone()).datetime().date();
        let mut date = start;
        for _ in 0..(5 * 366) {
            if self.months & (1 << date.month()) != 0 && self.day_matches(date) {
                for hour in 0..24i8 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minutes & (1 << minute) == 0 {
                            continue;
                        }
                        let dt = date.at(hour, minute, 0, 0);
                        let Ok(zoned) = self.tz.to_ambiguous_zoned(dt).compatible() else {
                            continue;
                        };
                        if zoned.timestamp() > after {
                            return Some(zoned.timestamp());
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

fn parse_field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + lo);
        }
        let v: u32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        if v < lo || v > hi {
            return Err(format!("{v} is outside {lo}-{hi}"));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("step {s:?} is not a number"))?;
                if step == 0 {
                    return Err("a step of 0 never matches".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { hi } else { v })
        };
        if start > end {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn interval_is_added_to_the_last_cycle_start() {
        let s = Schedule::Interval(SignedDuration::from_hours(24));
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:00Z")),
            Some(ts("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn cron_finds_the_next_minute_that_matches() {
        let c = Cron::parse("30 2 * * *", None).unwrap();
        assert_eq!(
            c.next_after(ts("2026-03-01T02:30:00Z")),
            Some(ts("2026-03-02T02:30:00Z"))
        );
        assert_eq!(
            c.next_after(ts("2026-03-01T01:00:00Z")),
            Some(ts("2026-03-01T02:30:00Z"))
        );
    }

    #[test]
    fn cron_respects_the_time_zone() {
        // 03:00 in Berlin is 02:00 UTC in winter.
        let c = Cron::parse("0 3 * * MON", Some("Europe/Berlin")).unwrap();
        // 2026-01-05 is a Monday.
        assert_eq!(
            c.next_after(ts("2026-01-01T00:00:00Z")),
            Some(ts("2026-01-05T02:00:00Z"))
        );
    }

    #[test]
    fn cron_steps_lists_names_and_macros() {
        let c = Cron::parse("*/15 9-17 * JAN,JUL 1-5", None).unwrap();
        assert_eq!(
            c.next_after(ts("2026-01-02T09:20:00Z")),
            Some(ts("2026-01-02T09:30:00Z"))
        );
        let d = Cron::parse("@monthly", None).unwrap();
        assert_eq!(
            d.next_after(ts("2026-01-15T00:00:00Z")),
            Some(ts("2026-02-01T00:00:00Z"))
        );
        let never = Cron::parse("0 0 31 2 *", None).unwrap();
        assert_eq!(never.next_after(ts("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn bad_cron_is_explained() {
        assert!(
            Cron::parse("* * *", None)
                .unwrap_err()
                .contains("five fields")
        );
        assert!(
            Cron::parse("61 * * * *", None)
                .unwrap_err()
                .contains("outside 0-59")
        );
        assert!(
            Cron::parse("*/0 * * * *", None)
                .unwrap_err()
                .contains("step of 0")
        );
        assert!(
            Cron::parse("0 0 * * *", Some("Mars/Olympus"))
                .unwrap_err()
                .contains("IANA")
        );
    }
}
