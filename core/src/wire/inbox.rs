//! The receive buffer a connection decodes messages from.

use bytes::{Buf, Bytes, BytesMut};

use super::{DecodeError, DecodeErrorKind, Decoded, Limits, Reader};

/// Bytes received and not yet consumed, and the account of the message being
/// decoded from them: how many wire bytes of it were consumed by earlier
/// calls and what its decoded parts hold.
///
/// Received [`Bytes`] are kept as they came while nothing else is pending,
/// so stream bytes ([`take`](Self::take)) leave as slices of the driver's own
/// buffers, never copied. Only the tail of a message cut by the end of one
/// read is joined with the next read's bytes into a buffer of the inbox's
/// own.
#[derive(Debug, Default)]
pub struct Inbox {
    pending: Pending,
    /// Wire bytes of the current message consumed by earlier calls.
    consumed: u64,
    /// Decoded size charged for the current message so far.
    charged: u64,
    /// The last decode that ran out of input, by name, and how many pending
    /// bytes it needs before it is worth running again
    /// ([`Reader::wanted`]).
    waiting: Option<(u64, usize)>,
}

/// Where the pending bytes are.
#[derive(Debug)]
enum Pending {
    /// One received buffer, as it came.
    Received(Bytes),
    /// Bytes joined from several reads.
    Joined(BytesMut),
}

impl Default for Pending {
    fn default() -> Self {
        Self::Received(Bytes::new())
    }
}

impl Inbox {
    /// Appends received bytes.
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.pending = match std::mem::take(&mut self.pending) {
            Pending::Received(old) if old.is_empty() => Pending::Received(data),
            Pending::Received(old) => {
                let mut joined = BytesMut::with_capacity(old.len() + data.len());
                joined.extend_from_slice(&old);
                joined.extend_from_slice(&data);
                Pending::Joined(joined)
            }
            Pending::Joined(mut joined) if joined.is_empty() => {
                joined.clear();
                Pending::Received(data)
            }
            Pending::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                Pending::Joined(joined)
            }
        };
    }

    /// The bytes received and not consumed.
    pub fn pending(&self) -> &[u8] {
        match &self.pending {
            Pending::Received(b) => b,
            Pending::Joined(b) => b,
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending().is_empty()
    }

    /// Takes the first `n` pending bytes (at most all of them) as one shared
    /// slice, without copying.
    pub fn take(&mut self, n: usize) -> Bytes {
        self.waiting = None;
        match &mut self.pending {
            Pending::Received(b) => b.split_to(n.min(b.len())),
            Pending::Joined(b) => b.split_to(n.min(b.len())).freeze(),
        }
    }

    /// Drops the first `n` pending bytes.
    pub fn advance(&mut self, n: usize) {
        self.waiting = None;
        match &mut self.pending {
            Pending::Received(b) => b.advance(n.min(b.len())),
            Pending::Joined(b) => b.advance(n.min(b.len())),
        }
    }

    /// How many wire bytes the message being decoded has taken so far,
    /// including what is pending.
    pub fn message_size(&self) -> u64 {
        self.consumed + self.pending().len() as u64
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
        let result = self.run(limits, decode);
        self.waiting = None;
        result
    }

    /// [`decode`](Self::decode) for a decoder known by `name` (what the
    /// connection's errors call it), which is not run again after it ran out
    /// of input until the bytes it was found to need are there
    /// ([`Reader::wanted`]) or another decoder ran: so a message decoded at
    /// once costs time linear in its atoms, however finely a peer cuts it.
    pub fn decode_named<T>(
        &mut self,
        limits: &Limits,
        name: &str,
        decode: impl FnOnce(&mut Reader<'_>) -> Decoded<T>,
    ) -> Decoded<T> {
        let key = name_key(name);
        if let Some((k, wanted)) = self.waiting
            && k == key
            && self.pending().len() < wanted
        {
            return self.check_size(limits).map(|()| None);
        }
        let result = self.run(limits, decode);
        if let Some((k, _)) = &mut self.waiting {
            *k = key;
        }
        result
    }

    /// Whether the message being decoded is still within
    /// [`Limits::max_message`].
    fn check_size(&self, limits: &Limits) -> Result<(), DecodeError> {
        if self.message_size() > limits.max_message {
            return Err(DecodeError::new(DecodeErrorKind::TooLarge {
                what: "message size",
                found: self.message_size(),
                limit: limits.max_message,
            }));
        }
        Ok(())
    }

    fn run<T>(
        &mut self,
        limits: &Limits,
        decode: impl FnOnce(&mut Reader<'_>) -> Decoded<T>,
    ) -> Decoded<T> {
        let mut r = Reader::resume(self.pending(), limits, self.charged);
        let result = decode(&mut r);
        let (used, charged, wanted) = (r.position(), r.charged(), r.wanted());
        self.advance(used);
        self.consumed += used as u64;
        self.charged = charged;
        // Relative to what is now pending; `decode_named` gives it its key.
        self.waiting = Some((0, wanted.saturating_sub(used)));
        match result? {
            Some(value) => {
                self.consumed = 0;
                self.charged = 0;
                self.waiting = None;
                Ok(Some(value))
            }
            None => self.check_size(limits).map(|()| None),
        }
    }
}

/// A decoder's name, reduced to what [`Inbox::decode_named`] compares.
fn name_key(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}
