//! Replies both protocols share, in the same shape.

use super::{Cx, DecodeError, Decoded, Protocol, Reader, Wire, encode_u64};

/// The acknowledgement `1` that ends many operations (serve `ImportPaths`
/// and `AddToStoreNar`; worker `BuildPaths`, `EnsurePath`, `AddTempRoot`,
/// ...). Nix always sends 1; anything else is refused, so that re-encoding
/// never changes bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack;

impl<P: Protocol> Wire<P> for Ack {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_u64(1, out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        match r.peek_u64() {
            None => Ok(None),
            Some(1) => {
                r.u64();
                Ok(Some(Self))
            }
            Some(other) => Err(DecodeError::unexpected(
                "the acknowledgement 1",
                other.to_string(),
            )),
        }
    }
}

/// A reply with nothing in it (a worker operation whose answer is only the
/// end of its log stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Done;

impl<P: Protocol> Wire<P> for Done {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, _out: &mut Vec<u8>) {}

    fn decode(_cx: &Cx<P>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(Some(Self))
    }
}

/// The end of a reply that is a NAR (serve `DumpStorePath`, worker
/// `NarFromPath`). The NAR itself has no length in front: it streams as
/// chunks, framed by its grammar, so nothing of it is a message; this is
/// what the connection reports once it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NarDone {
    /// The NAR's length in bytes.
    pub nar_size: u64,
}

impl<P: Protocol> Wire<P> for NarDone {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, _out: &mut Vec<u8>) {}

    fn decode(_cx: &Cx<P>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(Some(Self::default()))
    }
}
