//! The primitive wire types: integers, booleans, byte strings, strings, lists
//! and pairs. Messages are made of nothing else.

use nom::Parser;
use nom::number::streaming::le_u64;

use super::{Cx, DecodeError, DecodeErrorKind, Wire, WireResult};

/// Appends one u64, little-endian.
pub fn encode_u64(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Decodes one u64, little-endian.
pub fn decode_u64(input: &[u8]) -> WireResult<'_, u64> {
    le_u64(input)
}

/// Appends a byte string: its length, the bytes, zero padding to 8.
pub fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    encode_u64(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
    out.extend_from_slice(&[0u8; 8][..padding(bytes.len() as u64)]);
}

/// The number of zero bytes that follow `len` bytes on the wire.
pub(crate) const fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// The error for a prefix over its limit: final, since waiting for more bytes
/// cannot make it acceptable.
pub fn too_large(what: &'static str, found: u64, limit: u64) -> nom::Err<DecodeError> {
    nom::Err::Failure(DecodeError::new(DecodeErrorKind::TooLarge {
        what,
        found,
        limit,
    }))
}

/// Decodes a byte string, checking its length against the limit before waiting
/// for (or allocating) its bytes, and checking that the padding is zero as Nix
/// does.
pub fn decode_bytes<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, &'a [u8]> {
    let (rest, len) = decode_u64(input)?;
    if len > cx.limits.max_string {
        return Err(too_large("string length", len, cx.limits.max_string));
    }
    let len = usize::try_from(len).map_err(|_| {
        nom::Err::Failure(DecodeError::unexpected("a string length", len.to_string()))
    })?;
    let pad = padding(len as u64);
    let (rest, bytes) = nom::bytes::streaming::take(len).parse(rest)?;
    let (rest, pad_bytes) = nom::bytes::streaming::take(pad).parse(rest)?;
    if pad_bytes.iter().any(|&b| b != 0) {
        return Err(nom::Err::Failure(DecodeError::unexpected(
            "zero padding after a string",
            super::show_bytes(pad_bytes),
        )));
    }
    Ok((rest, bytes))
}

impl Wire for u64 {
    fn encode(&self, _cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(*self, out);
    }

    fn decode<'a>(_cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        decode_u64(input)
    }
}

impl Wire for bool {
    fn encode(&self, _cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(u64::from(*self), out);
    }

    /// Only 0 and 1 are accepted: Nix never sends anything else, and accepting
    /// other values would make re-encoding lossy.
    fn decode<'a>(_cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, raw) = decode_u64(input)?;
        match raw {
            0 => Ok((rest, false)),
            1 => Ok((rest, true)),
            other => Err(nom::Err::Failure(DecodeError::unexpected(
                "a boolean (0 or 1)",
                other.to_string(),
            ))),
        }
    }
}

/// Strings are UTF-8 on our side. Store paths, hashes, output names and every
/// message Nix sends are ASCII or UTF-8; a byte string that is not is reported
/// rather than silently altered.
impl Wire for String {
    fn encode(&self, _cx: &Cx, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out);
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, bytes) = decode_bytes(cx, input)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok((rest, s.to_owned())),
            Err(_) => Err(nom::Err::Failure(DecodeError::unexpected(
                "a UTF-8 string",
                super::show_bytes(bytes),
            ))),
        }
    }
}

/// Lists and sets: a count, then the items. The count is checked against the
/// limit first, and the vector grows with the items that actually arrive rather
/// than being reserved from the count.
impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(self.len() as u64, out);
        for item in self {
            item.encode(cx, out);
        }
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (mut rest, count) = decode_u64(input)?;
        if count > cx.limits.max_items {
            return Err(too_large("item count", count, cx.limits.max_items));
        }
        let mut items = Self::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let (r, item) = T::decode(cx, rest)?;
            items.push(item);
            rest = r;
        }
        Ok((rest, items))
    }
}

/// A pair is its two halves in order: the unit of which maps are lists.
impl<A: Wire, B: Wire> Wire for (A, B) {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        self.0.encode(cx, out);
        self.1.encode(cx, out);
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, a) = A::decode(cx, input)?;
        let (rest, b) = B::decode(cx, rest)?;
        Ok((rest, (a, b)))
    }
}
