//! Bytes waiting to be sent.

use std::collections::VecDeque;

use bytes::Bytes;

/// Outgoing bytes as a queue of [`Bytes`]: messages are encoded into a
/// growing buffer, and stream bodies are queued as the slices the host
/// offered, never copied. A runtime can write the queue with vectored I/O.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Bytes>,
    current: Vec<u8>,
    len: usize,
}

impl Outbox {
    /// The buffer messages are encoded into; it is sent after everything
    /// queued before it.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.current
    }

    /// Queues a slice to send as it is.
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.flush();
        self.len += bytes.len();
        self.queue.push_back(bytes);
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.current));
            self.len += bytes.len();
            self.queue.push_back(bytes);
        }
    }

    /// The next bytes to send.
    pub fn pop(&mut self) -> Option<Bytes> {
        self.flush();
        let bytes = self.queue.pop_front()?;
        self.len -= bytes.len();
        Some(bytes)
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.len + self.current.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
