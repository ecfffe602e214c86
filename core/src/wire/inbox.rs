//! The receive buffer a connection decodes messages from.

use super::{DecodeError, DecodeErrorKind, WireResult};

/// Bytes received and not yet consumed, with the bookkeeping that keeps
/// incremental decoding cheap: after a decoder says how many more bytes it
/// needs, it is not retried until they have arrived.
#[derive(Debug, Default, Clone)]
pub struct Inbox {
    buf: Vec<u8>,
    start: usize,
    /// Don't retry decoding until `pending().len()` reaches this.
    need: usize,
}

impl Inbox {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes received and not consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Marks `n` pending bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        self.need = 0;
    }

    /// Runs `decode` over the pending bytes. `Ok(None)` means it needs more;
    /// the decoder is then not rerun until the bytes it asked for are there.
    /// A message still incomplete at `max_message` bytes is an error, so a
    /// peer cannot make us buffer without bound.
    pub fn decode<T>(
        &mut self,
        max_message: usize,
        decode: impl FnOnce(&[u8]) -> WireResult<'_, T>,
    ) -> Result<Option<T>, DecodeError> {
        let available = self.pending().len();
        if available < self.need {
            return Ok(None);
        }
        match decode(self.pending()) {
            Ok((rest, value)) => {
                let used = available - rest.len();
                self.consume(used);
                Ok(Some(value))
            }
            Err(nom::Err::Incomplete(needed)) => {
                if available >= max_message {
                    return Err(DecodeError::new(DecodeErrorKind::TooLarge {
                        what: "buffered message size",
                        found: available as u64,
                        limit: max_message as u64,
                    }));
                }
                let more = match needed {
                    nom::Needed::Size(n) => n.get(),
                    nom::Needed::Unknown => 1,
                };
                self.need = available.saturating_add(more);
                Ok(None)
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
        }
    }
}
