//! What the checks of both protocols share: a cursor decoding one recorded
//! stream with the codec alone, and byte comparisons that say where two
//! streams part.

use nixwire_core::nar::NarFramer;
use nixwire_core::wire::{Decoded, Limits, Reader};

/// A cursor over one recorded stream, decoding with the codec alone (no
/// state machine), so that the codec is checked independently of the
/// connections. Each value is decoded from all the bytes after the cursor
/// with a fresh partial state: `Ok(None)` then means the stream ends inside
/// it.
pub(crate) struct Cursor<'a> {
    /// The whole stream.
    pub(crate) bytes: &'a [u8],
    /// How much of it has been decoded.
    pub(crate) pos: usize,
    limits: Limits,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            limits: Limits::default(),
        }
    }

    /// The bytes not decoded yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub(crate) fn is_done(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Decodes one value with `f`; `what` names it in errors.
    pub(crate) fn take<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Reader<'_>) -> Decoded<T>,
    ) -> Result<T, String> {
        let mut r = Reader::new(self.rest(), &self.limits);
        match f(&mut r) {
            Ok(Some(v)) => {
                self.pos += r.position();
                Ok(v)
            }
            Ok(None) => Err(format!(
                "{what} at byte {}: the stream ends inside it",
                self.pos
            )),
            Err(e) => Err(format!("{what} at byte {}: {e}", self.pos)),
        }
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.take(what, |r| Ok(r.u64()))
    }

    /// `n` raw bytes.
    pub(crate) fn raw(&mut self, what: &str, n: u64) -> Result<&'a [u8], String> {
        let bytes = usize::try_from(n)
            .ok()
            .and_then(|n| self.rest().get(..n))
            .ok_or_else(|| {
                format!(
                    "{what} at byte {}: the stream ends inside its {n} bytes",
                    self.pos
                )
            })?;
        self.pos += bytes.len();
        Ok(bytes)
    }

    /// A NAR straight in the stream, found to end by its grammar.
    pub(crate) fn nar(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let mut framer = NarFramer::new();
        let used = framer
            .feed(self.rest())
            .map_err(|e| format!("{what}: {e}"))?;
        if !framer.is_done() {
            return Err(format!("{what}: the stream ends inside the NAR"));
        }
        let nar = self.rest()[..used].to_vec();
        self.pos += used;
        Ok(nar)
    }
}

/// The first offset where two byte strings differ, for messages.
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// `Ok` if `ours` is `recorded`, else where they part.
pub(crate) fn same(what: &str, ours: &[u8], recorded: &[u8]) -> Result<(), String> {
    match first_difference(ours, recorded) {
        None => Ok(()),
        Some(at) => Err(format!(
            "{what}: ours ({} bytes) differs from the recording ({} bytes) at byte {at} \
             (the word there: ours {}, recorded {})",
            ours.len(),
            recorded.len(),
            word(ours, at),
            word(recorded, at)
        )),
    }
}

/// The 8-byte word holding byte `at`, in hex, for messages.
fn word(bytes: &[u8], at: usize) -> String {
    let start = at - at % 8;
    match bytes.get(start..bytes.len().min(start + 8)) {
        Some(w) if !w.is_empty() => w.iter().map(|b| format!("{b:02x}")).collect(),
        _ => "(none)".into(),
    }
}
