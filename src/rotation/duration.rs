//! Go-style durations (`90s`, `1h30m`, `720h`), the format Kubernetes uses for
//! `metav1.Duration` and the one CEL's `duration()` understands, so the schema's
//! CEL rules and this parser agree on what a valid value is.

use jiff::SignedDuration;

/// Parses a non-negative Go duration made of `<number><unit>` parts with units
/// `h`, `m`, `s` or `ms` (fractions allowed, e.g. `1.5h`).
pub fn parse(text: &str) -> Result<SignedDuration, String> {
    let err = || format!("{text:?} is not a duration such as 90s, 15m or 1h30m");
    if text.is_empty() {
        return Err(err());
    }
    let mut rest = text;
    let mut total_ms: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        if num_len == 0 || rest[..num_len].starts_with('.') || rest[..num_len].ends_with('.') {
            return Err(err());
        }
        rest = &rest[num_len..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else {
            return Err(err());
        };
        rest = &rest[unit_len..];
        total_ms += number * unit_ms;
    }
    // The spec bounds every duration (api::spec::MAX_DURATION, with a
    // message naming the field); here a huge value only must not overflow:
    // the cast saturates.
    Ok(SignedDuration::from_millis(total_ms.round() as i64))
}

/// Formats a duration the way a person would write it in a spec (`1h30m`, `90s`).
pub fn format(d: SignedDuration) -> String {
    let mut ms = d.as_millis().max(0);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse("1h30m").unwrap(), SignedDuration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), SignedDuration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), SignedDuration::from_millis(250));
        assert_eq!(parse("0s").unwrap(), SignedDuration::ZERO);
    }

    #[test]
    fn days_and_garbage_are_refused_with_the_value_named() {
        for bad in ["", "5", "5d", "h", "1h-5m", ".5h", "5.h", "-1s", "1 h"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        // Bounds are the spec's business (with the field's name); no overflow here.
        assert_eq!(
            parse("99999999999999999999h").unwrap(),
            SignedDuration::from_millis(i64::MAX)
        );
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["1h30m", "90s", "720h", "1s500ms", "0s"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(SignedDuration::from_secs(90)), "1m30s");
    }
}
