//! The primitive layouts, the same in both protocols: integers, booleans,
//! byte strings, lists and pairs. Messages are made of nothing else.

use std::fmt;

use super::{Cx, DecodeError, Decoded, NixString, Protocol, Reader, Wire};

/// Appends one u64, little-endian.
pub fn encode_u64(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&value.to_le_bytes());
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

impl<P: Protocol> Wire<P> for u64 {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_u64(*self, out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(r.u64())
    }
}

impl<P: Protocol> Wire<P> for bool {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_u64(u64::from(*self), out);
    }

    /// Only 0 and 1 are accepted: Nix never sends anything else, and
    /// accepting other values would make re-encoding lossy.
    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        match r.peek_u64() {
            None => Ok(None),
            Some(raw @ (0 | 1)) => {
                r.u64();
                Ok(Some(raw == 1))
            }
            Some(other) => Err(DecodeError::unexpected(
                "a boolean (0 or 1)",
                other.to_string(),
            )),
        }
    }
}

impl<P: Protocol> Wire<P> for NixString {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.string()
    }
}

/// A list's progress: its count once read, the items decoded so far and the
/// partial state of the one being decoded.
pub struct VecPartial<T, S> {
    count: Option<u64>,
    items: Vec<T>,
    item: S,
}

impl<T, S: Default> Default for VecPartial<T, S> {
    fn default() -> Self {
        Self {
            count: None,
            items: Vec::new(),
            item: S::default(),
        }
    }
}

impl<T, S> fmt::Debug for VecPartial<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VecPartial")
            .field("count", &self.count)
            .field("decoded", &self.items.len())
            .finish()
    }
}

/// Lists and sets: a count, then the items. The count is checked against the
/// limit first; the vector grows with the items that actually arrive (each
/// charged as it comes) rather than being reserved from the count.
impl<P: Protocol, T: Wire<P> + Send> Wire<P> for Vec<T> {
    type Partial = VecPartial<T, T::Partial>;

    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_u64(self.len() as u64, out);
        for item in self {
            item.encode(cx, out);
        }
    }

    fn decode(cx: &Cx<P>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        let count = match partial.count {
            Some(count) => count,
            None => match r.count()? {
                Some(count) => *partial.count.insert(count),
                None => return Ok(None),
            },
        };
        while (partial.items.len() as u64) < count {
            let index = partial.items.len();
            let item = T::decode(cx, &mut partial.item, r).map_err(|e| e.within_index(index))?;
            let Some(item) = item else {
                return Ok(None);
            };
            r.charge(size_of::<T>() as u64)?;
            partial.items.push(item);
            partial.item = T::Partial::default();
        }
        partial.count = None;
        Ok(Some(std::mem::take(&mut partial.items)))
    }
}

/// A pair's progress: the first half once decoded, and the partial state of
/// the half being decoded.
pub struct PairPartial<A, SA, SB> {
    first: Option<A>,
    a: SA,
    b: SB,
}

impl<A, SA: Default, SB: Default> Default for PairPartial<A, SA, SB> {
    fn default() -> Self {
        Self {
            first: None,
            a: SA::default(),
            b: SB::default(),
        }
    }
}

impl<A, SA, SB> fmt::Debug for PairPartial<A, SA, SB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairPartial")
            .field("first_done", &self.first.is_some())
            .finish()
    }
}

/// A pair is its two halves in order: the unit of which maps are lists.
impl<P: Protocol, A: Wire<P> + Send, B: Wire<P>> Wire<P> for (A, B) {
    type Partial = PairPartial<A, A::Partial, B::Partial>;

    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>) {
        self.0.encode(cx, out);
        self.1.encode(cx, out);
    }

    fn decode(cx: &Cx<P>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        if partial.first.is_none() {
            match A::decode(cx, &mut partial.a, r)? {
                Some(a) => partial.first = Some(a),
                None => return Ok(None),
            }
        }
        let Some(b) = B::decode(cx, &mut partial.b, r)? else {
            return Ok(None);
        };
        match partial.first.take() {
            Some(a) => Ok(Some((a, b))),
            None => Err(DecodeError::unexpected(
                "the first half of a pair",
                "nothing (a decoder bug)",
            )),
        }
    }
}
