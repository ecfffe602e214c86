//! Nix32, Nix's own base-32 text form of digests (`HashFormat::Nix32` in
//! Nix, formerly called "base32").
//!
//! It is not RFC 4648 base32. The alphabet is
//! `0123456789abcdfghijklmnpqrsvwxyz` (the digits and the lowercase letters
//! without `e`, `o`, `u` and `t`), there is no padding, and the bit order is
//! Nix's own: the digest is read as one little-endian unsigned integer (byte
//! 0 holds the lowest 8 bits) and written in base 32, most significant digit
//! first, with exactly [`encoded_len`] digits. So the *last* character holds
//! the lowest 5 bits of byte 0, and the first character holds the top bits
//! of the last byte, which may be fewer than 5: those extra high bits of the
//! first digit must be zero.
//!
//! This is written by hand rather than with `data-encoding`: that crate
//! cuts the input into 5-byte blocks from the front, and even with its
//! least-significant-bit-first order it emits the digits in the reverse of
//! Nix's order, with no option to reverse them; nor can it express Nix's
//! rule about the first digit's high bits. (Nix: `src/libutil/base-nix-32.cc`.)

use thiserror::Error;

use super::byte_repr;

/// The 32 digits, in order of value.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

const INVALID: u8 = 0xff;

const REVERSE: [u8; 256] = {
    let mut map = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        map[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    map
};

/// Why a Nix32 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Nix32Error {
    /// A character outside [`ALPHABET`].
    #[error(
        "invalid character {} at position {position}: expected one of `0123456789abcdfghijklmnpqrsvwxyz`",
        byte_repr(*found)
    )]
    InvalidChar {
        /// Byte offset of the character in the text.
        position: usize,
        /// The byte found there.
        found: u8,
    },
}

/// How many Nix32 digits encode `len` bytes: `ceil(len * 8 / 5)`, and 0 for 0.
///
/// 16 bytes (md5) take 26 digits, 20 bytes (a store path's hash part) 32,
/// 32 bytes (sha256) 52 and 64 bytes (sha512) 103.
pub const fn encoded_len(len: usize) -> usize {
    if len == 0 { 0 } else { (len * 8 - 1) / 5 + 1 }
}

/// The value of a Nix32 digit, or `None` for a byte outside [`ALPHABET`].
pub const fn digit_value(c: u8) -> Option<u8> {
    match REVERSE[c as usize] {
        INVALID => None,
        v => Some(v),
    }
}

/// Whether `c` is one of the 32 digits.
pub const fn is_digit(c: u8) -> bool {
    REVERSE[c as usize] != INVALID
}

/// Encodes `bytes` as Nix32.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    encode_to(bytes, &mut out);
    out
}

/// Appends the Nix32 form of `bytes` to `out`.
pub fn encode_to(bytes: &[u8], out: &mut String) {
    let len = encoded_len(bytes.len());
    out.reserve(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let low = u16::from(bytes[i]);
        let high = bytes.get(i + 1).map_or(0, |&x| u16::from(x));
        let digit = ((low | high << 8) >> j) & 0x1f;
        out.push(char::from(ALPHABET[usize::from(digit)]));
    }
}

/// Decodes Nix32 text exactly as Nix's `BaseNix32::decode` does.
///
/// The result has `ceil(len * 5 / 8)` bytes, one more if the first digit
/// has bits set above that: a caller that expects `n` bytes from
/// [`encoded_len(n)`](encoded_len) digits must check the length, and a
/// longer result means the first digit was too large.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Nix32Error> {
    // Report the leftmost bad character (Nix, decoding from the end, reports
    // the rightmost).
    if let Some(position) = text.iter().position(|&c| !is_digit(c)) {
        return Err(Nix32Error::InvalidChar {
            position,
            found: text[position],
        });
    }
    let mut out = Vec::with_capacity((text.len() * 5).div_ceil(8));
    for (n, &c) in text.iter().rev().enumerate() {
        let digit = REVERSE[usize::from(c)];
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        if out.len() < i + 1 {
            out.resize(i + 1, 0);
        }
        let shifted = u16::from(digit) << j;
        out[i] |= (shifted & 0xff) as u8;
        let spill = (shifted >> 8) as u8;
        if spill != 0 {
            if out.len() < i + 2 {
                out.resize(i + 2, 0);
            }
            out[i + 1] |= spill;
        }
    }
    Ok(out)
}
