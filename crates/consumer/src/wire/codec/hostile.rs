//! Every annotation parser against what a hostile pod could write into its
//! own annotations: arbitrary text, random bytes, the grammar's punctuation
//! in bulk and values far over the caps. Each must return a value or an
//! error, never panic; a value it returns must be one it can write back
//! (strict: the same text again up to canonical form; lenient: a value the
//! strict reading accepts); and anything over a cap is refused.

use proptest::prelude::*;

use super::{EXCERPT_CHARS, LastSeen, Nudge, RevisionReport, Traffic};

/// The longest an error may print: the excerpt's characters escaped (at
/// most 10 bytes each) and the words around them.
const MAX_ERROR_TEXT: usize = EXCERPT_CHARS * 10 + 100;

/// Runs every reading of every value over `text` and checks the properties.
fn every_reading_holds(text: &str) -> Result<(), TestCaseError> {
    let mut errors = Vec::new();
    match RevisionReport::parse(text) {
        Ok(r) => prop_assert_eq!(RevisionReport::parse(&r.format()), Ok(r)),
        Err(e) => errors.push(e),
    }
    match Nudge::parse(text) {
        Ok(n) => prop_assert_eq!(Nudge::parse(&n.format()), Ok(n)),
        Err(e) => errors.push(e),
    }
    match LastSeen::parse(text) {
        Ok(s) => prop_assert_eq!(LastSeen::parse(&s.format()), Ok(s)),
        Err(e) => errors.push(e),
    }
    match text.parse::<Traffic>() {
        Ok(t) => prop_assert_eq!(t.format().parse::<Traffic>(), Ok(t)),
        Err(e) => errors.push(e),
    }
    // The lenient readings refuse only what is over a cap.
    match LastSeen::parse_lenient(text) {
        Ok(l) => prop_assert_eq!(LastSeen::parse(&l.value.format()), Ok(l.value)),
        Err(e) => {
            prop_assert!(matches!(e.class(), "too-long" | "too-many"), "{e}");
            errors.push(e);
        }
    }
    match Traffic::parse_lenient(text) {
        Ok(l) => prop_assert_eq!(l.value.format().parse::<Traffic>(), Ok(l.value)),
        Err(e) => {
            prop_assert!(matches!(e.class(), "too-long" | "too-many"), "{e}");
            errors.push(e);
        }
    }
    for e in errors {
        let shown = e.to_string();
        prop_assert!(shown.len() <= MAX_ERROR_TEXT, "{shown}");
    }
    Ok(())
}

/// Text built from the grammars' own characters, so the parsers get deep.
fn punctuation(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(",".to_string()),
            Just(";".to_string()),
            Just("=".to_string()),
            Just(":".to_string()),
            Just("/".to_string()),
            Just(" ".to_string()),
            Just("accepted=".to_string()),
            Just("retired=".to_string()),
            Just("client=".to_string()),
            Just("::1".to_string()),
            Just("2026-03-01T10:14:03Z".to_string()),
            Just("9999-12-31T23:59:59.9999999999+23:59".to_string()),
            "[0-9]{1,22}",
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn arbitrary_text_is_read_or_refused(text in any::<String>()) {
        every_reading_holds(&text)?;
    }

    #[test]
    fn random_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        every_reading_holds(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn the_grammars_punctuation_in_bulk_is_read_or_refused(text in punctuation(600)) {
        every_reading_holds(&text)?;
    }

    #[test]
    fn a_value_over_the_length_cap_is_refused_whatever_it_holds(
        unit in punctuation(8).prop_filter("not empty", |u| !u.is_empty()),
    ) {
        let caps = [
            RevisionReport::MAX_LEN,
            Nudge::MAX_LEN,
            LastSeen::MAX_LEN,
            Traffic::MAX_LEN,
        ];
        let longest = caps.iter().max().copied().unwrap_or_default();
        let text = unit.repeat(longest / unit.len() + 1);
        prop_assert_eq!(RevisionReport::parse(&text).unwrap_err().class(), "too-long");
        prop_assert_eq!(Nudge::parse(&text).unwrap_err().class(), "too-long");
        prop_assert_eq!(LastSeen::parse_lenient(&text).unwrap_err().class(), "too-long");
        prop_assert_eq!(Traffic::parse_lenient(&text).unwrap_err().class(), "too-long");
        prop_assert_eq!(text.parse::<Traffic>().unwrap_err().class(), "too-long");
    }
}

#[test]
fn many_commas_are_refused_as_too_many_entries_not_read_one_by_one() {
    let commas = ",".repeat(LastSeen::MAX_LEN);
    assert_eq!(
        LastSeen::parse_lenient(&commas).unwrap_err().class(),
        "too-many"
    );
    let counts = format!("accepted={}", ",".repeat(Traffic::MAX_LEN - 9));
    assert_eq!(
        Traffic::parse_lenient(&counts).unwrap_err().class(),
        "too-many"
    );
    let parts = ";".repeat(Traffic::MAX_LEN);
    let lenient = Traffic::parse_lenient(&parts).unwrap();
    assert_eq!(lenient.value, Traffic::default());
    assert_eq!(lenient.skipped, Traffic::MAX_LEN + 1);
}
