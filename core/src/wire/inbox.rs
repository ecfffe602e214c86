//! The receive buffer a connection decodes messages from.

use bytes::{Buf, Bytes, BytesMut};

use super::{DecodeError, DecodeErrorKind, Decoded, Limits, Reader};

/// Bytes received and not yet consumed, and the account of the message being
/// decoded from them: how many wire bytes of it were consumed by earlier
/// calls and what its decoded parts hold.
///
/// Received [`Bytes`] are adopted without a copy when the buffer is empty and
/// the driver holds no other reference to them, which is the common case of
/// a read buffer handed over whole; stream bytes ([`take`](Self::take)) then
/// leave as slices of that same allocation.
#[derive(Debug, Default)]
pub struct Inbox {
    buf: BytesMut,
    /// Wire bytes of the current message consumed by earlier calls.
    consumed: u64,
    /// Decoded size charged for the current message so far.
    charged: u64,
}

impl Inbox {
    /// Appends received bytes.
    pub fn push(&mut self, data: Bytes) {
        if self.buf.is_empty() {
            match data.try_into_mut() {
                Ok(adopted) => self.buf = adopted,
                Err(shared) => self.buf.extend_from_slice(&shared),
            }
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// The bytes received and not consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the first `n` pending bytes (at most all of them) as one shared
    /// slice, without copying.
    pub fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.buf.len());
        self.buf.split_to(n).freeze()
    }

    /// Drops the first `n` pending bytes.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
    }

    /// How many wire bytes the message being decoded has taken so far,
    /// including what is pending.
    pub fn message_size(&self) -> u64 {
        self.consumed + self.buf.len() as u64
    }

    /// Runs a resumable decoder over the pending bytes and consumes what it
    /// took. `Ok(None)` means it needs more: its progress is in the partial
    /// state the closure decodes into, and the message's account carries on.
    /// A message larger than [`Limits::max_message`] on the wire, counted as
    /// its bytes arrive, or than [`Limits::max_decoded`] once decoded, is an
    /// error.
    pub fn decode<T>(
        &mut self,
        limits: &Limits,
        decode: impl FnOnce(&mut Reader<'_>) -> Decoded<T>,
    ) -> Decoded<T> {
        let mut r = Reader::resume(&self.buf, limits, self.charged);
        let result = decode(&mut r);
        let (used, charged) = (r.position(), r.charged());
        self.buf.advance(used);
        self.consumed += used as u64;
        self.charged = charged;
        match result? {
            Some(value) => {
                self.consumed = 0;
                self.charged = 0;
                Ok(Some(value))
            }
            None if self.message_size() > limits.max_message => {
                Err(DecodeError::new(DecodeErrorKind::TooLarge {
                    what: "message size",
                    found: self.message_size(),
                    limit: limits.max_message,
                }))
            }
            None => Ok(None),
        }
    }
}
