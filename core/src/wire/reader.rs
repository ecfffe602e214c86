//! The reader decoders consume atoms from.

use super::{DecodeError, DecodeErrorKind, Limits, NixString};

/// What a decoder answers: the value, `None` when the input ended inside it
/// (its progress is kept in its partial state), or an error.
pub type Decoded<T> = Result<Option<T>, DecodeError>;

/// A position in the bytes received so far, from which decoders take whole
/// atoms, and the account of what they decoded.
///
/// An atom (an integer, a string with its padding) is consumed only when all
/// of it is there, so a decoder never holds half an atom: a partial state is
/// made of finished values. Every atom is charged to
/// [`Limits::max_decoded`](super::Limits::max_decoded) as it is taken.
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    charged: u64,
    limits: &'a Limits,
    /// How much input the decode has been found to need: the end of the
    /// furthest atom it reached for that was not all there.
    wanted: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`, with nothing charged yet.
    pub fn new(input: &'a [u8], limits: &'a Limits) -> Self {
        Self::resume(input, limits, 0)
    }

    /// A reader for a message of which `charged` bytes of decoded values are
    /// already held (its earlier parts, from earlier calls).
    pub fn resume(input: &'a [u8], limits: &'a Limits, charged: u64) -> Self {
        Self {
            input,
            pos: 0,
            charged,
            limits,
            wanted: 0,
        }
    }

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.input[self.pos..]
    }

    /// What decoded values have been charged in all.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// How many bytes of input, from the start, a decode that answered
    /// `None` is known to need before it can get further: the end of the
    /// atom that was cut short (0 when none was). Decoding is a function of
    /// the bytes, so a retry with less input would stop at the same atom;
    /// [`Inbox`](super::Inbox) does not retry before then. Without this a
    /// value decoded at once would be decoded over from its start for every
    /// read of a peer that trickles it, which is quadratic.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// Notes that the atom at the position needs `n` bytes.
    fn short(&mut self, n: usize) {
        self.wanted = self.wanted.max(self.pos.saturating_add(n));
    }

    /// The limits decoding is bounded by.
    pub fn limits(&self) -> &'a Limits {
        self.limits
    }

    /// Charges `bytes` of decoded value against the limit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), DecodeError> {
        self.charged = self.charged.saturating_add(bytes);
        if self.charged > self.limits.max_decoded {
            return Err(DecodeError::new(DecodeErrorKind::TooLarge {
                what: "decoded message size",
                found: self.charged,
                limit: self.limits.max_decoded,
            }));
        }
        Ok(())
    }

    /// Runs `f` as one atom: if it answers `None` (the input ended inside
    /// it), nothing it consumed or charged stays consumed or charged. For
    /// small values of a bounded shape; a value that may be large must keep a
    /// partial state instead, or every retry would start it over.
    pub fn atomic<T>(&mut self, f: impl FnOnce(&mut Self) -> Decoded<T>) -> Decoded<T> {
        let (pos, charged) = (self.pos, self.charged);
        let result = f(self)?;
        if result.is_none() {
            self.pos = pos;
            self.charged = charged;
        }
        Ok(result)
    }

    /// Takes one u64, little-endian.
    pub fn u64(&mut self) -> Option<u64> {
        let value = self.peek_u64()?;
        self.pos += 8;
        Some(value)
    }

    /// Looks at the next u64 without taking it.
    pub fn peek_u64(&mut self) -> Option<u64> {
        let Some(bytes) = self.rest().first_chunk::<8>() else {
            self.short(8);
            return None;
        };
        Some(u64::from_le_bytes(*bytes))
    }

    /// Takes one byte string (length, bytes, zero padding) and returns its
    /// bytes, borrowed from the input. The length is checked against
    /// [`Limits::max_string`](super::Limits::max_string) before anything
    /// else, so a hostile prefix is an error at once, not a wait.
    pub fn bytes(&mut self) -> Decoded<&'a [u8]> {
        let Some(len) = self.peek_u64() else {
            return Ok(None);
        };
        if len > self.limits.max_string {
            return Err(DecodeError::new(DecodeErrorKind::TooLarge {
                what: "string length",
                found: len,
                limit: self.limits.max_string,
            }));
        }
        // Below max_string, which is far below usize::MAX on any target
        // with the memory to matter.
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::unexpected("a string length", len.to_string()))?;
        let pad = super::primitives::padding(len as u64);
        let rest = self.rest();
        if rest.len() < 8 + len + pad {
            self.short(8 + len + pad);
            return Ok(None);
        }
        let bytes = &rest[8..8 + len];
        let padding = &rest[8 + len..8 + len + pad];
        if padding.iter().any(|&b| b != 0) {
            return Err(DecodeError::unexpected(
                "zero padding after a string",
                super::show_bytes(padding),
            ));
        }
        self.charge(len as u64)?;
        self.pos += 8 + len + pad;
        Ok(Some(bytes))
    }

    /// Takes one byte string as a [`NixString`].
    pub fn string(&mut self) -> Decoded<NixString> {
        Ok(self.bytes()?.map(NixString::copy_from_slice))
    }

    /// Checks the count of the list that comes next, if it is there yet,
    /// against `limit`, taking nothing. For lists decoded at once, which are
    /// decoded again as their atoms arrive: bounding them keeps that cheap.
    pub fn check_short_list(&mut self, what: &'static str, limit: u64) -> Result<(), DecodeError> {
        match self.peek_u64() {
            Some(count) if count > limit => Err(DecodeError::new(DecodeErrorKind::TooLarge {
                what,
                found: count,
                limit,
            })),
            _ => Ok(()),
        }
    }

    /// Takes a list's count, checked against
    /// [`Limits::max_items`](super::Limits::max_items).
    pub fn count(&mut self) -> Decoded<u64> {
        let Some(count) = self.peek_u64() else {
            return Ok(None);
        };
        if count > self.limits.max_items {
            return Err(DecodeError::new(DecodeErrorKind::TooLarge {
                what: "item count",
                found: count,
                limit: self.limits.max_items,
            }));
        }
        self.pos += 8;
        Ok(Some(count))
    }
}
