//! The codecs of the values consumer pods carry in their own annotations, one
//! file per value, and what they share: the typed error, the caps and the
//! grammar of numbers and times. docs/wire.md gives every grammar in ABNF;
//! tests/wire/annotations/ holds the fixtures other languages test against.
//!
//! Annotations are written by the pods themselves, so every parser here is
//! written for hostile input: it checks the length before it looks at the
//! text, caps the number of entries it keeps, never panics, and its error
//! quotes at most [`EXCERPT_CHARS`] characters of the input.
//!
//! Each value has `format` (and `Display`) and a strict `parse`: the whole
//! value must match its grammar. The two values read from many pods, where
//! one bad entry must not hide the good ones, also have `parse_lenient`.

#[cfg(test)]
mod hostile;
mod last_seen;
mod nudge;
mod revision;
mod traffic;

use std::fmt;

pub use last_seen::LastSeen;
pub use nudge::Nudge;
pub use revision::RevisionReport;
pub use traffic::Traffic;

use jiff::Timestamp;

/// How many characters of a refused value an error quotes.
pub const EXCERPT_CHARS: usize = 32;

/// A value read with `parse_lenient`: what could be read, and how many
/// entries were skipped because they broke the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lenient<T> {
    pub value: T,
    pub skipped: usize,
}

/// Why an annotation value was refused. Names the annotation and quotes a
/// bounded, escaped prefix of the value (pod annotations are not secret, but
/// may be hostile: long, or full of control characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {annotation} value ({kind}): {excerpt}")]
pub struct WireError {
    /// Which value: `revision report`, `nudge`, `last-seen` or `traffic`.
    pub annotation: &'static str,
    pub kind: ErrorKind,
    excerpt: Excerpt,
}

impl WireError {
    pub(crate) fn new(annotation: &'static str, kind: ErrorKind, input: &str) -> WireError {
        WireError {
            annotation,
            kind,
            excerpt: Excerpt::of(input),
        }
    }

    /// The language-neutral error class (docs/wire.md, the fixtures).
    pub fn class(&self) -> &'static str {
        self.kind.class()
    }
}

/// What is wrong with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Longer than the value's cap, in bytes; refused before it is read.
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    /// More entries than the value's cap.
    #[error("more than {max} entries")]
    TooMany { max: usize },
    /// Does not match the grammar.
    #[error("{0}")]
    Syntax(&'static str),
    /// A number or time that matches the grammar but is out of its range.
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    /// One version (or part) twice.
    #[error("{0} appears twice")]
    Duplicate(&'static str),
}

impl ErrorKind {
    /// `too-long`, `too-many`, `syntax`, `out-of-range` or `duplicate`.
    pub fn class(&self) -> &'static str {
        match self {
            ErrorKind::TooLong { .. } => "too-long",
            ErrorKind::TooMany { .. } => "too-many",
            ErrorKind::Syntax(_) => "syntax",
            ErrorKind::OutOfRange(_) => "out-of-range",
            ErrorKind::Duplicate(_) => "duplicate",
        }
    }
}

/// At most [`EXCERPT_CHARS`] characters of a value, shown escaped.
#[derive(Clone, PartialEq, Eq)]
struct Excerpt {
    head: String,
    cut: bool,
}

impl Excerpt {
    fn of(input: &str) -> Excerpt {
        let mut chars = input.chars();
        let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
        Excerpt {
            head,
            cut: chars.next().is_some(),
        }
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}", self.head.escape_debug())?;
        f.write_str(if self.cut { "\"…" } else { "\"" })
    }
}

impl fmt::Debug for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Refuses `text` when it is longer than `max` bytes.
pub(crate) fn check_len(text: &str, max: usize) -> Result<(), ErrorKind> {
    if text.len() > max {
        return Err(ErrorKind::TooLong { max });
    }
    Ok(())
}

/// `text` without the spaces and tabs around it (the lenient readings allow
/// them; other Unicode spaces are not trimmed).
pub(crate) fn ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The longest decimal number the grammar allows (`u64::MAX` has 20 digits).
const MAX_DIGITS: usize = 20;

/// Every number of the contract — versions, revisions, counts, in files
/// and annotations: `1*20DIGIT`, at most `u64::MAX`; no sign, no spaces.
/// Leading zeros are read (`007` is 7) but never written.
pub fn parse_number(text: &str) -> Option<u64> {
    decimal(text, "number").ok()
}

/// `1*20DIGIT`, at most `u64::MAX`: no sign, no spaces. Leading zeros are
/// read (`007` is 7) but never written. `what` names the field in errors.
pub(crate) fn decimal(text: &str, what: &'static str) -> Result<u64, ErrorKind> {
    if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::Syntax(what));
    }
    text.parse().map_err(|_| ErrorKind::OutOfRange(what))
}

/// The first instant a value may hold (`0000-01-01T00:00:00Z`): earlier
/// ones have no RFC 3339 form.
pub fn earliest_time() -> Timestamp {
    Timestamp::from_second(-62_167_219_200).unwrap_or(Timestamp::MIN)
}

/// An RFC 3339 `date-time` (section 5.6) with an upper-case `T` and `Z`, at
/// most nine fraction digits and seconds below 60, between
/// [`earliest_time`] and `Timestamp::MAX` (9999-12-30T22:00:00.999999999Z).
pub(crate) fn rfc3339(text: &str) -> Result<Timestamp, ErrorKind> {
    const WHAT: &str = "time is not an RFC 3339 date-time";
    if !rfc3339_shape(text.as_bytes()) {
        return Err(ErrorKind::Syntax(WHAT));
    }
    let t: Timestamp = text.parse().map_err(|_| ErrorKind::OutOfRange("time"))?;
    if t < earliest_time() {
        return Err(ErrorKind::OutOfRange("time"));
    }
    Ok(t)
}

/// `YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM)` with every field in its range
/// (the calendar day is checked when the time is converted).
fn rfc3339_shape(b: &[u8]) -> bool {
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date_time = num(0, 4).is_some()
        && at(4, b'-')
        && num(5, 2).is_some_and(|m| (1..=12).contains(&m))
        && at(7, b'-')
        && num(8, 2).is_some_and(|d| (1..=31).contains(&d))
        && at(10, b'T')
        && num(11, 2).is_some_and(|h| h <= 23)
        && at(13, b':')
        && num(14, 2).is_some_and(|m| m <= 59)
        && at(16, b':')
        && num(17, 2).is_some_and(|s| s <= 59);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return false;
        }
        i += 1 + digits;
    }
    match b.get(i) {
        Some(b'Z') => b.len() == i + 1,
        Some(b'+' | b'-') => {
            b.len() == i + 6
                && num(i + 1, 2).is_some_and(|h| h <= 23)
                && at(i + 3, b':')
                && num(i + 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_quotes_a_bounded_escaped_prefix_only() {
        let long = format!("\u{7}{}", "x".repeat(10_000));
        let e = WireError::new("nudge", ErrorKind::Syntax("expected '/'"), &long);
        let shown = e.to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.contains("\\u{7}") && shown.ends_with('…'), "{shown}");
        assert_eq!(e.class(), "syntax");
    }

    #[test]
    fn numbers_are_plain_digits_within_u64() {
        assert_eq!(decimal("007", "n"), Ok(7));
        assert_eq!(decimal("18446744073709551615", "n"), Ok(u64::MAX));
        assert_eq!(
            decimal("18446744073709551616", "n"),
            Err(ErrorKind::OutOfRange("n"))
        );
        for bad in [
            "",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1e3",
            "٣",
            "000000000000000000001",
        ] {
            assert_eq!(decimal(bad, "n"), Err(ErrorKind::Syntax("n")), "{bad:?}");
        }
    }

    #[test]
    fn times_are_strict_rfc3339_inside_the_representable_range() {
        let ok = |s: &str| rfc3339(s).map(|t| t.to_string());
        assert_eq!(ok("2026-03-01T10:14:03Z").unwrap(), "2026-03-01T10:14:03Z");
        assert_eq!(
            ok("2026-03-01T11:14:03.5+01:00").unwrap(),
            "2026-03-01T10:14:03.5Z"
        );
        assert_eq!(ok("0000-01-01T00:00:00Z").unwrap(), "0000-01-01T00:00:00Z");
        for bad in [
            "2026-03-01t10:14:03z",
            "2026-03-01 10:14:03Z",
            "2026-03-01T10:14Z",
            "2026-03-01T10:14:60Z",
            "2026-03-01T10:14:03.1234567891Z",
            "2026-03-01T10:14:03.Z",
            "2026-03-01T10:14:03+24:00",
            "2026-03-01T10:14:03+0100",
            "2026-03-01T10:14:03",
            "2026-03-01T10:14:03Zjunk",
        ] {
            assert_eq!(ok(bad).map_err(|e| e.class()), Err("syntax"), "{bad}");
        }
        for far in [
            "2026-02-30T10:14:03Z",
            "9999-12-31T00:00:00Z",
            "0000-01-01T00:00:00+01:00",
        ] {
            assert_eq!(ok(far).map_err(|e| e.class()), Err("out-of-range"), "{far}");
        }
    }
}
