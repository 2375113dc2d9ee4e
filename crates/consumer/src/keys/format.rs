//! Key formats: `<prefix><random part>[<checksum>]`.

use rand::{TryRng, rngs::SysRng};
use zeroize::Zeroizing;

use super::{KeyError, checksum::crc32};

/// Characters the random part is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    Base62,
    Base64Url,
    Hex,
    Base32,
}

impl Alphabet {
    pub fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::Base62 => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            Alphabet::Base64Url => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            }
            Alphabet::Hex => b"0123456789abcdef",
            Alphabet::Base32 => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        }
    }

    /// Entropy of one character drawn uniformly from this alphabet.
    pub fn bits_per_char(self) -> f64 {
        (self.chars().len() as f64).log2()
    }

    /// Characters needed for at least `bits` of entropy.
    pub fn chars_for_bits(self, bits: u32) -> usize {
        (f64::from(bits) / self.bits_per_char()).ceil() as usize
    }
}

/// A validated key format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub alphabet: Alphabet,
    /// Length of the random part in characters.
    pub length: usize,
    pub prefix: String,
    /// Append a 6-character base62 CRC-32 of prefix and random part.
    pub checksum: bool,
}

impl KeySpec {
    pub fn entropy_bits(&self) -> f64 {
        self.length as f64 * self.alphabet.bits_per_char()
    }
}

const CHECKSUM_LEN: usize = 6;

pub(super) fn generate(spec: &KeySpec) -> Result<Zeroizing<String>, KeyError> {
    let alphabet = spec.alphabet.chars();
    let n = alphabet.len() as u32;
    // Rejection sampling: bytes at or above the largest multiple of n would bias
    // the draw, so they are thrown away.
    let limit = (256 / n) * n;
    let mut out = Zeroizing::new(String::with_capacity(
        spec.prefix.len() + spec.length + CHECKSUM_LEN,
    ));
    out.push_str(&spec.prefix);
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < spec.prefix.len() + spec.length {
        SysRng
            .try_fill_bytes(&mut buf[..])
            .map_err(|e| KeyError::Random(e.to_string()))?;
        for &b in buf.iter() {
            if u32::from(b) < limit && out.len() < spec.prefix.len() + spec.length {
                out.push(alphabet[(u32::from(b) % n) as usize] as char);
            }
        }
    }
    if spec.checksum {
        let sum = checksum_text(out.as_bytes());
        out.push_str(&sum);
    }
    Ok(out)
}

fn checksum_text(data: &[u8]) -> String {
    let digits = Alphabet::Base62.chars();
    let mut v = crc32(data);
    let mut text = [b'0'; CHECKSUM_LEN];
    for slot in text.iter_mut().rev() {
        *slot = digits[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8_lossy(&text).into_owned()
}

pub(super) fn checksum_ok(spec: &KeySpec, key: &str) -> bool {
    if !spec.checksum {
        return true;
    }
    if key.len() != spec.prefix.len() + spec.length + CHECKSUM_LEN || !key.starts_with(&spec.prefix)
    {
        return false;
    }
    let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    checksum_text(body.as_bytes()) == sum
}
