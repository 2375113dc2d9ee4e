use super::*;

fn spec(alphabet: Alphabet, length: usize, prefix: &str, checksum: bool) -> KeySpec {
    KeySpec {
        alphabet,
        length,
        prefix: prefix.into(),
        checksum,
    }
}

#[test]
fn generated_keys_have_the_asked_shape() {
    for alphabet in [
        Alphabet::Base62,
        Alphabet::Base64Url,
        Alphabet::Hex,
        Alphabet::Base32,
    ] {
        let s = spec(alphabet, 40, "acme_live_", true);
        let k = SecretKey::generate(&s).unwrap();
        let text = k.expose();
        assert!(text.starts_with("acme_live_"));
        assert_eq!(text.len(), 10 + 40 + 6);
        let body = &text[10..50];
        assert!(
            body.bytes().all(|b| alphabet.chars().contains(&b)),
            "{alphabet:?}"
        );
        assert!(checksum_ok(&s, text));
    }
}

#[test]
fn a_mistyped_key_fails_its_checksum() {
    let s = spec(Alphabet::Base62, 32, "kr_", true);
    let k = SecretKey::generate(&s).unwrap();
    let mut bytes = k.expose().as_bytes().to_vec();
    bytes[5] = if bytes[5] == b'a' { b'b' } else { b'a' };
    assert!(!checksum_ok(&s, std::str::from_utf8(&bytes).unwrap()));
    assert!(!checksum_ok(&s, "kr_short"));
}

#[test]
fn two_keys_are_never_the_same() {
    let s = spec(Alphabet::Hex, 32, "", false);
    let keys: std::collections::BTreeSet<String> = (0..200)
        .map(|_| SecretKey::generate(&s).unwrap().expose().to_string())
        .collect();
    assert_eq!(keys.len(), 200);
}

#[test]
fn characters_are_drawn_evenly() {
    // 62 does not divide 256: without rejection sampling the first 8 symbols
    // would come up 25% more often. 62,000 draws; each symbol expects 1,000.
    let s = spec(Alphabet::Base62, 1000, "", false);
    let mut counts = [0u32; 128];
    for _ in 0..62 {
        for b in SecretKey::generate(&s).unwrap().expose().bytes() {
            counts[b as usize] += 1;
        }
    }
    let low: u32 = b"01234567".iter().map(|&b| counts[b as usize]).sum();
    let high: u32 = b"stuvwxyz".iter().map(|&b| counts[b as usize]).sum();
    // Expected 8,000 each (σ ≈ 88); a 25% bias would give 10,000 vs 8,000.
    assert!(low.abs_diff(high) < 800, "low {low} high {high}");
}

#[test]
fn entropy_is_computed_from_alphabet_and_length() {
    assert_eq!(Alphabet::Hex.chars_for_bits(128), 32);
    assert_eq!(Alphabet::Base62.chars_for_bits(128), 22);
    assert!(spec(Alphabet::Base62, 22, "", false).entropy_bits() >= 128.0);
    assert!(spec(Alphabet::Base62, 21, "", false).entropy_bits() < 128.0);
}

#[test]
fn key_material_never_shows_in_debug_or_display() {
    let k = SecretKey::generate(&spec(Alphabet::Base62, 40, "acme_", true)).unwrap();
    let secret = k.expose().to_string();
    let random_part = &secret[5..45];
    for shown in [
        format!("{k:?}"),
        format!("{k}"),
        format!("{k:#?}"),
        format!("{:?}", Some(&k)),
    ] {
        assert!(!shown.contains(random_part), "{shown}");
    }
    assert!(format!("{k:?}").contains(&k.fingerprint()));
}

#[test]
fn fingerprint_and_digest_identify_without_revealing() {
    let k = SecretKey::adopt(b"an-existing-key-0123456789".to_vec()).unwrap();
    let fp = k.fingerprint();
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 32);
    assert_eq!(k.digest(), digest_of(b"an-existing-key-0123456789"));
    assert_eq!(k.digest().len(), 64);
    // The fingerprint shown in status is not the digest verifiers compare to.
    assert!(!k.digest().starts_with(&fp[7..]));
}

#[test]
fn adopted_keys_must_be_printable_and_long_enough() {
    assert!(
        SecretKey::adopt(b"short".to_vec())
            .unwrap_err()
            .to_string()
            .contains("shorter")
    );
    assert!(SecretKey::adopt(b"has a space in it, long enough".to_vec()).is_err());
    assert!(SecretKey::adopt(vec![b'x'; 2000]).is_err());
    assert!(SecretKey::adopt(b"0123456789abcdef".to_vec()).is_ok());
}

/// Resolves to the inherent const when `T: Serialize`, to the trait's otherwise.
struct Probe<T: ?Sized>(std::marker::PhantomData<T>);
trait NotSerialize {
    const SERIALIZE: bool = false;
}
impl<T: ?Sized> NotSerialize for Probe<T> {}
#[allow(dead_code)]
impl<T: ?Sized + serde::Serialize> Probe<T> {
    const SERIALIZE: bool = true;
}

#[test]
fn key_material_has_no_serialize_so_it_cannot_reach_status_or_logs_as_json() {
    const { assert!(!Probe::<SecretKey>::SERIALIZE) };
    // The probe itself works: String is Serialize.
    const { assert!(Probe::<String>::SERIALIZE) };
}
