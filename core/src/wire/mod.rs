//! Nix's wire format: the primitives every message is built from, and the
//! [`wire_message!`](crate::wire_message) declaration that derives both directions of a
//! message from one list of fields.
//!
//! # The format
//! Everything is a sequence of unsigned 64-bit little-endian integers and byte
//! strings. A byte string is its length (u64) followed by the bytes and zero
//! padding up to a multiple of 8. Booleans are integers 0 or 1. Lists and sets
//! are a count followed by the items; maps a count followed by key, value pairs.
//! Sets are kept as `Vec` so that the order a peer sent is the order re-encoded:
//! replaying a capture byte for byte depends on it.
//!
//! # Decoding
//! Decoders are [nom] streaming parsers over `&[u8]`: when the input ends early
//! they answer [`nom::Err::Incomplete`], which is a normal answer ("need more
//! bytes"), never an error. Length and count prefixes are checked against
//! [`Limits`] *before* anything is allocated or awaited, so a hostile prefix of
//! 2^60 is an immediate [`DecodeError`], not an allocation and not a wait for
//! bytes that never come.
//!
//! # Versions
//! Both encoding and decoding take the negotiated [`Version`]; a field introduced
//! in version 2.4 is neither written nor read below it. The version gate sits
//! beside the field in its message's declaration and nowhere else.

mod error;
mod inbox;
mod primitives;

pub use error::{DecodeError, DecodeErrorKind, show_bytes};
pub use inbox::Inbox;
pub(crate) use primitives::padding;
pub use primitives::{decode_bytes, decode_u64, encode_bytes, encode_u64, too_large};

/// The result of a streaming decoder: the remaining input and the value, or
/// `Incomplete` (need more bytes), or an error.
pub type WireResult<'a, T> = nom::IResult<&'a [u8], T, DecodeError>;

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

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Upper bounds on what a decoder will accept from a peer, so that memory is
/// bounded by configuration rather than by what a peer claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest byte string accepted (store paths, log messages, environment
    /// values of a derivation).
    pub max_string: u64,
    /// The most items accepted in one list, set or map.
    pub max_items: u64,
    /// The most bytes one message may buffer before it is decoded. Streams
    /// (NARs, logs) are not messages and are never buffered whole.
    pub max_message: usize,
}

impl Default for Limits {
    /// Generous for real stores (a derivation environment may hold megabytes),
    /// small enough that a hostile peer cannot exhaust memory.
    fn default() -> Self {
        Self {
            max_string: 64 << 20,
            max_items: 1 << 22,
            max_message: 256 << 20,
        }
    }
}

/// What a decoder needs to know besides the bytes: the negotiated version and
/// the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cx {
    /// The negotiated protocol version, which gates fields.
    pub version: Version,
    /// Bounds on prefixes and buffering.
    pub limits: Limits,
}

impl Cx {
    /// A context at `version` with default limits.
    pub fn new(version: Version) -> Self {
        Self {
            version,
            limits: Limits::default(),
        }
    }
}

/// A value with a wire form. Implemented by the primitives here and, through
/// [`wire_message!`](crate::wire_message), by every declared message.
pub trait Wire: Sized {
    /// Appends the wire form at `cx.version` to `out`.
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>);

    /// Decodes one value from the front of `input` at `cx.version`.
    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self>;
}

/// Declares a wire message once: its fields in wire order, each with the
/// protocol version that introduced it. Both [`Wire::encode`] and
/// [`Wire::decode`] are generated from that one list, so the two directions
/// cannot drift apart. A field absent at the negotiated version is neither
/// written nor read, and decodes to its `Default`.
///
/// ```
/// nixwire_core::wire_message! {
///     /// An example with a field that appeared in 2.4.
///     pub struct Example {
///         /// Always present.
///         pub a: u64,
///         /// Only from protocol 2.4 on.
///         #[since(2, 4)]
///         pub b: String,
///     }
/// }
/// use nixwire_core::wire::{Cx, Version, Wire};
/// let mut out = Vec::new();
/// Example { a: 1, b: "x".into() }.encode(&Cx::new(Version::new(2, 3)), &mut out);
/// assert_eq!(out.len(), 8);
/// ```
#[macro_export]
macro_rules! wire_message {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[since($maj:literal, $min:literal)])?
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The message's fields in wire order, each with the version that
            /// introduced it (`None`: present in every version).
            pub const FIELDS: &'static [(&'static str, Option<$crate::wire::Version>)] = &[
                $( (stringify!($field), $crate::wire_message!(@since $($maj, $min)?)), )*
            ];
        }

        impl $crate::wire::Wire for $name {
            fn encode(&self, cx: &$crate::wire::Cx, out: &mut Vec<u8>) {
                $(
                    if $crate::wire_message!(@present cx $($maj, $min)?) {
                        $crate::wire::Wire::encode(&self.$field, cx, out);
                    }
                )*
            }

            fn decode<'a>(
                cx: &$crate::wire::Cx,
                input: &'a [u8],
            ) -> $crate::wire::WireResult<'a, Self> {
                let mut value = Self::default();
                let mut rest = input;
                $(
                    if $crate::wire_message!(@present cx $($maj, $min)?) {
                        let (r, v) = <$ty as $crate::wire::Wire>::decode(cx, rest).map_err(|e| {
                            e.map(|e| e.within(stringify!($field)).within(stringify!($name)))
                        })?;
                        value.$field = v;
                        rest = r;
                    }
                )*
                Ok((rest, value))
            }
        }
    };
    (@since) => { None };
    (@since $maj:literal, $min:literal) => { Some($crate::wire::Version::new($maj, $min)) };
    (@present $cx:ident) => { true };
    (@present $cx:ident $maj:literal, $min:literal) => {
        $cx.version >= $crate::wire::Version::new($maj, $min)
    };
}

/// Declares an enum carried as one u64 code on the wire. An unknown code is a
/// [`DecodeError`] naming the accepted codes.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$emeta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),* $(,)?
        }
    ) => {
        $(#[$emeta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $code, )*
        }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The variant for a wire code, if there is one.
            pub fn from_code(code: u64) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// The wire code.
            pub fn code(self) -> u64 {
                self as u64
            }
        }

        impl $crate::wire::Wire for $name {
            fn encode(&self, cx: &$crate::wire::Cx, out: &mut Vec<u8>) {
                $crate::wire::Wire::encode(&self.code(), cx, out);
            }

            fn decode<'a>(
                cx: &$crate::wire::Cx,
                input: &'a [u8],
            ) -> $crate::wire::WireResult<'a, Self> {
                let (rest, code) = <u64 as $crate::wire::Wire>::decode(cx, input)?;
                match Self::from_code(code) {
                    Some(v) => Ok((rest, v)),
                    None => Err(nom::Err::Failure($crate::wire::DecodeError::unexpected(
                        concat!($what, " (one of: ", $(stringify!($code), " ",)* ")"),
                        code.to_string(),
                    ))),
                }
            }
        }
    };
}
