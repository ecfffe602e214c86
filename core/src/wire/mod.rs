//! Nix's wire format: the primitives every message is built from, the
//! declarations that derive both directions of a message from one list of
//! fields, and the resumable decoding that keeps the cost of reading a
//! message linear in its size however the bytes are cut.
//!
//! # The format
//! Everything is a sequence of unsigned 64-bit little-endian integers and byte
//! strings. A byte string is its length (u64) followed by the bytes and zero
//! padding up to a multiple of 8. Booleans are integers 0 or 1. Lists and sets
//! are a count followed by the items; maps a count followed by key, value
//! pairs. Sets are kept as `Vec` so that the order a peer sent is the order
//! re-encoded: replaying a capture byte for byte depends on it.
//!
//! Nix's strings are bytes: a builder's log tail copied into an error
//! message, a derivation's environment, a log line may hold any byte. The
//! default string here is therefore [`NixString`], a [`Bytes`](bytes::Bytes)
//! slice; validated text types (store paths, hashes, output names) exist only
//! where Nix itself validates.
//!
//! # Protocols and the decoding context
//! A layout belongs to one protocol: [`Wire<Serve>`](Wire) and
//! [`Wire<Worker>`](Wire) are different traits to the compiler, so a serve
//! layout can never be used at a worker version. The [`Cx`] a layout is
//! encoded and decoded with carries that protocol's negotiated [`Version`],
//! the negotiated [`Features`], the peer's [`StoreDir`]
//! and the [`Limits`].
//!
//! # Decoding is resumable
//! A decoder is given a [`Reader`] over the bytes received so far and a
//! `Partial`: its own progress from earlier calls. It consumes whole atoms
//! (integers, strings) as they complete, records what it decoded in the
//! `Partial` and answers `Ok(None)` when the input ends, so the next call
//! continues where this one stopped instead of starting over. Reading a
//! 16 MiB list 64 KiB at a time costs what reading it at once costs.
//!
//! Length and count prefixes are checked against [`Limits`] before anything is
//! allocated or awaited, and every decoded value is charged to
//! [`Limits::max_decoded`], so what a peer can make us hold is bounded by
//! configuration, not by what it claims.
//!
//! # Declaring messages
//! [`wire_message!`](crate::wire_message) declares a struct and its layout
//! at once; [`wire_layout!`](crate::wire_layout) declares a protocol's layout
//! of a type defined elsewhere (the domain types in [`store`](crate::store),
//! shared by both protocols). A field may be gated with `#[since(M, m)]`,
//! `#[until(M, m)]` or `#[feature("name")]`, and then says what it is when
//! absent (`= expr`); `#[with(Codec)]` encodes a field through a [`Codec`]
//! other than its type's own layout.

mod declare;
mod error;
mod inbox;
mod primitives;
mod reader;
mod replies;
mod store;
mod string;

use std::fmt;
use std::marker::PhantomData;

pub use declare::{
    Codec, FieldInfo, SelfCodec, StructPartial, decode_field_with, decode_whole, take_field,
};
pub use error::{DecodeError, DecodeErrorKind, show_bytes};
pub use inbox::Inbox;
pub(crate) use primitives::padding;
pub use primitives::{PairPartial, VecPartial, encode_bytes, encode_u64};
pub use reader::{Decoded, Reader};
pub use replies::{Ack, Done, NarDone};
pub use store::{
    Base16Hash, BuiltOutputList, BuiltOutputs, BuiltOutputsPartial, OutputsShape, PrefixedNix32Hash,
};
pub use string::NixString;

use crate::store::StoreDir;

/// A protocol version, `major.minor`, as the serve and worker protocols send it
/// (`major << 8 | minor` in one u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major version: 2 for the serve protocol, 1 for the worker protocol.
    pub major: u8,
    /// The minor version, which gates fields.
    pub minor: u8,
}

impl Version {
    /// The version `major.minor`.
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }

    /// The version as one wire integer.
    pub const fn to_wire(self) -> u64 {
        ((self.major as u64) << 8) | self.minor as u64
    }

    /// Splits a wire integer into a version; `None` if it has bits above the
    /// 16 that a version uses.
    pub const fn from_wire(raw: u64) -> Option<Self> {
        if raw > 0xffff {
            return None;
        }
        Some(Self {
            major: (raw >> 8) as u8,
            minor: (raw & 0xff) as u8,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One of Nix's two protocols, as a type: layouts are implemented for one of
/// them, and a [`Cx`] is of one of them.
pub trait Protocol: Copy + fmt::Debug + Send + Sync + 'static {
    /// The protocol's name, for messages.
    const NAME: &'static str;
    /// The major version every version of this protocol has.
    const MAJOR: u8;
}

/// The serve protocol (`nix-store --serve`, `ssh://` stores): major version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {}

impl Protocol for Serve {
    const NAME: &'static str = "serve";
    const MAJOR: u8 = 2;
}

/// The worker protocol (`nix-daemon`, `ssh-ng://`, `unix://` stores): major
/// version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {}

impl Protocol for Worker {
    const NAME: &'static str = "worker";
    const MAJOR: u8 = 1;
}

/// The features both ends agreed on (the worker protocol's 1.38 feature
/// exchange), which gate fields as versions do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(Vec<String>);

impl Features {
    /// A feature set from names; kept sorted and without repeats.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        let mut v: Vec<String> = names.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    /// Whether `name` was agreed.
    pub fn has(&self, name: &str) -> bool {
        self.0.binary_search_by(|f| f.as_str().cmp(name)).is_ok()
    }

    /// The features both sets have.
    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.iter().filter(|f| other.has(f)).cloned().collect())
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Upper bounds on what a peer can make us buffer and hold, so that memory is
/// bounded by configuration rather than by what a peer claims.
///
/// The worst case a peer can cause for one connection is about
/// `max_message` bytes of received input (a message still arriving) plus
/// `max_decoded` bytes of decoded values (what arrived so far of that
/// message, or a decoded reply not yet taken out with `poll_event`). With
/// the defaults that is 512 MiB. Streams (NARs, logs) are not messages: they
/// pass through and are never held whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The longest byte string accepted (store paths, log messages,
    /// environment values of a derivation).
    pub max_string: u64,
    /// The most items accepted in one list, set or map.
    pub max_items: u64,
    /// The most wire bytes one message may take, counted as they arrive.
    pub max_message: u64,
    /// The most memory one decoded message may take: every string's bytes
    /// and every list item's slot are charged as they are decoded.
    pub max_decoded: u64,
    /// What a NAR may hold (Nix's own limits by default).
    pub nar: crate::nar::NarLimits,
}

impl Default for Limits {
    /// Generous for real stores (a derivation environment may hold
    /// megabytes), small enough that a hostile peer cannot exhaust memory.
    fn default() -> Self {
        Self {
            max_string: 64 << 20,
            max_items: 1 << 22,
            max_message: 256 << 20,
            max_decoded: 256 << 20,
            nar: crate::nar::NarLimits::default(),
        }
    }
}

/// What a layout needs besides the bytes: the protocol's negotiated version
/// and features, the store directory paths are printed in, and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cx<P: Protocol> {
    /// The negotiated version, which gates fields.
    pub version: Version,
    /// The negotiated features, which gate fields too.
    pub features: Features,
    /// The store directory of the peer: full store paths on the wire are in
    /// it.
    pub store_dir: StoreDir,
    /// Bounds on prefixes, buffering and decoded size.
    pub limits: Limits,
    protocol: PhantomData<P>,
}

impl<P: Protocol> Cx<P> {
    /// A context at `version` with no features, the default store directory
    /// and default limits.
    ///
    /// # Panics
    /// If `version` is not of protocol `P` (its major version differs): a
    /// context of the wrong protocol is a programming error, never input.
    pub fn new(version: Version) -> Self {
        assert_eq!(
            version.major,
            P::MAJOR,
            "a {} protocol context needs major version {}, not {version}",
            P::NAME,
            P::MAJOR
        );
        Self {
            version,
            features: Features::default(),
            store_dir: StoreDir::default(),
            limits: Limits::default(),
            protocol: PhantomData,
        }
    }

    /// The same context with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same context with another store directory.
    #[must_use]
    pub fn with_store_dir(mut self, store_dir: StoreDir) -> Self {
        self.store_dir = store_dir;
        self
    }

    /// Whether the negotiated version is at least `major.minor`.
    pub fn since(&self, major: u8, minor: u8) -> bool {
        self.version >= Version::new(major, minor)
    }
}

/// A value with a wire layout in protocol `P`. Implemented by the primitives
/// here for every protocol and, through [`wire_message!`](crate::wire_message)
/// and [`wire_layout!`](crate::wire_layout), by every message for its own.
pub trait Wire<P: Protocol>: Sized {
    /// A decode's progress kept between calls when the input ends inside the
    /// value (`()` for atoms, which are only consumed whole).
    type Partial: Default + fmt::Debug + Send;

    /// The fields of a declared layout in wire order, with their gates
    /// (empty for layouts written by hand). A type with a layout in each
    /// protocol has a list in each: `<BuildResult as Wire<Serve>>::FIELDS`.
    const FIELDS: &'static [FieldInfo] = &[];

    /// Appends the wire form to `out`.
    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>);

    /// Continues decoding from `r`: `Ok(Some)` when the value is complete,
    /// `Ok(None)` when the input ended first (what was consumed is kept in
    /// `partial`; call again with the same `partial` once more bytes came).
    fn decode(cx: &Cx<P>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self>;

    /// Decodes a value only once all of it has come: until then nothing is
    /// consumed and no progress is kept, so no partial state has to live
    /// between calls. For small values of a bounded size (a handshake step,
    /// a STDERR message); a value that may be large keeps its partial state
    /// with [`decode`](Self::decode) instead, or every call would start it
    /// over.
    fn decode_at_once(cx: &Cx<P>, r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| Self::decode(cx, &mut Self::Partial::default(), r))
    }

    /// Decodes one value from the front of `input`, which must hold all of
    /// it; returns the value and how many bytes it took. For tests, replays
    /// and data files: connections decode incrementally.
    fn decode_exact(cx: &Cx<P>, input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(input, &cx.limits);
        let mut partial = Self::Partial::default();
        match Self::decode(cx, &mut partial, &mut r)? {
            Some(value) => Ok((value, r.position())),
            None => Err(DecodeError::new(DecodeErrorKind::Truncated {
                at: r.position() as u64,
            })),
        }
    }

    /// The wire form as a new vector.
    fn to_wire(&self, cx: &Cx<P>) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(cx, &mut out);
        out
    }
}
