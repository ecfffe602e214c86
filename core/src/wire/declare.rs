//! Declaring layouts: [`wire_message!`](crate::wire_message),
//! [`wire_layout!`](crate::wire_layout) and [`wire_enum!`](crate::wire_enum),
//! and the run-time pieces their expansions call.
//!
//! A declared struct decodes in one of two ways. When all of it has arrived
//! (the usual case), it decodes straight into its fields as one atom. When
//! the input ends inside it, it keeps each finished field in a
//! [`StructPartial`] and the next call resumes at the field it stopped in, so
//! the bytes already read are never decoded twice.

use std::any::Any;
use std::fmt;

use super::{Cx, DecodeError, Decoded, Protocol, Reader, Version, Wire};

/// How a field is encoded when not by its own type's layout
/// (`#[with(Codec)]`): the same value may travel in different shapes.
pub trait Codec<P: Protocol, T> {
    /// The decode's progress kept between calls.
    type Partial: Default + fmt::Debug + Send + 'static;

    /// Appends `value`'s wire form.
    fn encode(value: &T, cx: &Cx<P>, out: &mut Vec<u8>);

    /// Continues decoding a value; see [`Wire::decode`].
    fn decode(cx: &Cx<P>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<T>;
}

/// The codec of a type with its own layout: [`Wire`] itself.
#[derive(Debug)]
pub enum SelfCodec {}

impl<P: Protocol, T: Wire<P>> Codec<P, T> for SelfCodec
where
    T::Partial: 'static,
{
    type Partial = T::Partial;

    fn encode(value: &T, cx: &Cx<P>, out: &mut Vec<u8>) {
        value.encode(cx, out);
    }

    fn decode(cx: &Cx<P>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<T> {
        T::decode(cx, partial, r)
    }
}

/// A declared struct's progress: the fields finished so far, in order, and
/// the partial state of the one being decoded. Values are boxed because one
/// type serves every struct; this costs an allocation per field only when a
/// struct is cut by the end of the input, never on the whole-struct path.
#[derive(Default)]
pub struct StructPartial {
    done: Vec<Box<dyn Any + Send>>,
    current: Option<Box<dyn Any + Send>>,
}

impl fmt::Debug for StructPartial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StructPartial")
            .field("fields_done", &self.done.len())
            .field("in_field", &self.current.is_some())
            .finish()
    }
}

fn decoder_bug(what: &str) -> DecodeError {
    DecodeError::unexpected(what, "another type (a bug in a declared layout)")
}

impl StructPartial {
    /// Whether nothing has been decoded yet.
    pub fn is_fresh(&self) -> bool {
        self.done.is_empty() && self.current.is_none()
    }

    /// Records field `index`'s value when it is not on the wire (`_field`
    /// names its type, as in [`decode_field_with`]).
    pub fn absent<S, T: Send + 'static>(
        &mut self,
        index: usize,
        _field: fn(&S) -> &T,
        value: impl FnOnce() -> T,
    ) {
        if self.done.len() == index {
            self.done.push(Box::new(value()));
        }
    }

    /// Takes the finished fields out, in order, leaving the partial fresh.
    pub fn finish(&mut self) -> std::vec::IntoIter<Box<dyn Any + Send>> {
        self.current = None;
        std::mem::take(&mut self.done).into_iter()
    }
}

/// Decodes field `index` of a struct through codec `C` if it is that field's
/// turn; `Ok(true)` once the field is finished. `_field` names the field's
/// type (`|s: &S| &s.field`), so the expansion never spells it.
pub fn decode_field_with<P, S, T, C>(
    cx: &Cx<P>,
    partial: &mut StructPartial,
    index: usize,
    r: &mut Reader<'_>,
    _field: fn(&S) -> &T,
) -> Result<bool, DecodeError>
where
    P: Protocol,
    T: Send + 'static,
    C: Codec<P, T>,
{
    if partial.done.len() > index {
        return Ok(true);
    }
    let state = partial
        .current
        .get_or_insert_with(|| Box::new(C::Partial::default()))
        .downcast_mut::<C::Partial>()
        .ok_or_else(|| decoder_bug("a field's partial state"))?;
    match C::decode(cx, state, r)? {
        Some(value) => {
            partial.done.push(Box::new(value));
            partial.current = None;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Decodes a whole field through codec `C` on the whole-struct path.
#[doc(hidden)]
pub fn decode_whole<P, S, T, C>(cx: &Cx<P>, r: &mut Reader<'_>, _field: fn(&S) -> &T) -> Decoded<T>
where
    P: Protocol,
    C: Codec<P, T>,
{
    C::decode(cx, &mut C::Partial::default(), r)
}

/// Takes a finished field's value out of [`StructPartial::finish`]'s list.
#[doc(hidden)]
pub fn take_field<S, T: 'static>(
    values: &mut std::vec::IntoIter<Box<dyn Any + Send>>,
    _field: fn(&S) -> &T,
) -> Result<T, DecodeError> {
    let value = values
        .next()
        .ok_or_else(|| decoder_bug("one more decoded field"))?;
    value
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| decoder_bug("a field of the declared type"))
}

/// How a declared field is gated, for documentation and tests: what
/// [`wire_message!`](crate::wire_message) and
/// [`wire_layout!`](crate::wire_layout) put in a layout's
/// [`Wire::FIELDS`] (one list per protocol, since a type shared by both
/// has a layout in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The field's name.
    pub name: &'static str,
    /// The version that introduced it.
    pub since: Option<Version>,
    /// The version that removed it.
    pub until: Option<Version>,
    /// The feature it needs.
    pub feature: Option<&'static str>,
    /// Whether it is on this protocol's wire at all.
    pub on_wire: bool,
}

/// Declares a protocol's layout of a struct defined elsewhere: the fields in
/// wire order, each with its gates. Both [`Wire::encode`] and
/// [`Wire::decode`] come from the one list, and the struct literal the
/// decoder builds names every field, so a field left out of the layout is a
/// compile error.
///
/// Field forms (gate attributes in this order: `since`, `until`, `feature`,
/// then `with`):
/// - `name`: always on the wire;
/// - `#[since(M, m)] name = absent`: on the wire from version M.m on, else
///   the value `absent` (likewise `#[until(M, m)]` and `#[feature("f")]`);
/// - `name = value`: never on this protocol's wire; decodes to `value`;
/// - `#[with(Codec)] name`: encoded through a [`Codec`] instead of the
///   field type's own layout.
///
/// A gated field without a value for when it is absent does not compile: no
/// field silently decodes to a default.
///
/// ```compile_fail
/// # use nixwire_core::wire::Serve;
/// pub struct NoAbsentValue { pub a: u64 }
/// nixwire_core::wire_layout! {
///     impl Wire<Serve> for NoAbsentValue {
///         #[since(2, 4)] a,
///     }
/// }
/// ```
///
/// Nor does a gate of another protocol's major version (a worker version
/// in a serve layout):
///
/// ```compile_fail
/// # use nixwire_core::wire::{Cx, Serve, Version, Wire};
/// pub struct WrongProtocol { pub a: u64 }
/// nixwire_core::wire_layout! {
///     impl Wire<Serve> for WrongProtocol {
///         #[since(1, 38)] a = 0,
///     }
/// }
/// let _ = WrongProtocol { a: 1 }.to_wire(&Cx::<Serve>::new(Version::new(2, 8)));
/// ```
///
/// ```
/// use nixwire_core::wire::{Cx, Serve, Version, Wire};
/// #[derive(Debug, PartialEq)]
/// pub struct Example { pub a: u64, pub b: u64 }
/// nixwire_core::wire_layout! {
///     impl Wire<Serve> for Example {
///         a,
///         #[since(2, 4)] b = 0,
///     }
/// }
/// let old = Cx::<Serve>::new(Version::new(2, 3));
/// assert_eq!(Example { a: 1, b: 7 }.to_wire(&old).len(), 8);
/// assert_eq!(Example::decode_exact(&old, &[1, 0, 0, 0, 0, 0, 0, 0]).unwrap().0, Example { a: 1, b: 0 });
/// ```
#[macro_export]
macro_rules! wire_layout {
    (
        $(#[doc = $doc:literal])*
        impl Wire<$proto:ty> for $name:ident {
            $(
                $(#[since($smaj:literal, $smin:literal)])?
                $(#[until($umaj:literal, $umin:literal)])?
                $(#[feature($feat:literal)])?
                $(#[with($codec:ty)])?
                $field:ident $(= $absent:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        impl $crate::wire::Wire<$proto> for $name {
            type Partial = $crate::wire::StructPartial;

            const FIELDS: &'static [$crate::wire::FieldInfo] = &[
                $( $crate::wire::FieldInfo {
                    name: stringify!($field),
                    since: $crate::wire_layout!(@opt_version $($smaj, $smin)?),
                    until: $crate::wire_layout!(@opt_version $($umaj, $umin)?),
                    feature: $crate::wire_layout!(@opt_feature $($feat)?),
                    on_wire: $crate::wire_layout!(@on_wire
                        [$($smaj)? $($umaj)? $($feat)?] [$($absent)?]),
                }, )*
            ];

            fn encode(&self, cx: &$crate::wire::Cx<$proto>, out: &mut Vec<u8>) {
                $(
                    $crate::wire_layout!(@encode $proto, cx, out, self, $field,
                        $crate::wire_layout!(@codec $($codec)?),
                        [$($smaj, $smin)?] [$($umaj, $umin)?] [$($feat)?] [$($absent)?]);
                )*
            }

            fn decode(
                cx: &$crate::wire::Cx<$proto>,
                partial: &mut $crate::wire::StructPartial,
                r: &mut $crate::wire::Reader<'_>,
            ) -> $crate::wire::Decoded<Self> {
                let within = |e: $crate::wire::DecodeError, field: &'static str| {
                    e.within(field).within(stringify!($name))
                };
                if partial.is_fresh() {
                    // All of it may be here: decode straight into the fields.
                    let whole = r.atomic(|r| {
                        Ok(Some(Self { $(
                            $field: $crate::wire_layout!(@whole $proto, cx, r, within, $field,
                                $crate::wire_layout!(@codec $($codec)?),
                                [$($smaj, $smin)?] [$($umaj, $umin)?] [$($feat)?] [$($absent)?]),
                        )* }))
                    })?;
                    if whole.is_some() {
                        return Ok(whole);
                    }
                }
                // Cut by the end of the input: resume field by field.
                let mut index = 0usize;
                $(
                    $crate::wire_layout!(@resume $proto, cx, r, within, partial, index, $field,
                        $crate::wire_layout!(@codec $($codec)?),
                        [$($smaj, $smin)?] [$($umaj, $umin)?] [$($feat)?] [$($absent)?]);
                    index += 1;
                )*
                let _ = index;
                let mut values = partial.finish();
                Ok(Some(Self { $(
                    $field: $crate::wire::take_field(&mut values, |s: &Self| &s.$field)?,
                )* }))
            }
        }
    };

    (@opt_version) => { None };
    (@opt_version $maj:literal, $min:literal) => { Some($crate::wire::Version::new($maj, $min)) };
    (@opt_feature) => { None };
    (@opt_feature $f:literal) => { Some($f) };
    (@on_wire [] [$absent:expr]) => { false };
    (@on_wire [$($gate:tt)*] [$($absent:tt)*]) => { true };
    (@codec) => { $crate::wire::SelfCodec };
    (@codec $codec:ty) => { $codec };

    // Encoding one field: always, never (a value and no gate), or gated.
    (@encode $proto:ty, $cx:ident, $out:ident, $this:ident, $field:ident, $codec:ty,
        [] [] [] []) => {
        <$codec as $crate::wire::Codec<$proto, _>>::encode(&$this.$field, $cx, $out)
    };
    (@encode $proto:ty, $cx:ident, $out:ident, $this:ident, $field:ident, $codec:ty,
        [] [] [] [$absent:expr]) => {};
    (@encode $proto:ty, $cx:ident, $out:ident, $this:ident, $field:ident, $codec:ty,
        $s:tt $u:tt $f:tt [$absent:expr]) => {
        if $crate::wire_layout!(@gate $proto, $cx, $s $u $f) {
            <$codec as $crate::wire::Codec<$proto, _>>::encode(&$this.$field, $cx, $out)
        }
    };
    (@encode $proto:ty, $cx:ident, $out:ident, $this:ident, $field:ident, $codec:ty,
        $s:tt $u:tt $f:tt []) => {
        compile_error!("a gated field needs `= value`: what it is when absent")
    };

    // One field on the whole-struct path: its value.
    (@whole $proto:ty, $cx:ident, $r:ident, $within:ident, $field:ident, $codec:ty,
        [] [] [] []) => {{
        let decoded = $crate::wire::decode_whole::<$proto, Self, _, $codec>(
            $cx, $r, |s: &Self| &s.$field,
        )
        .map_err(|e| $within(e, stringify!($field)))?;
        match decoded {
            Some(v) => v,
            None => return Ok(None),
        }
    }};
    (@whole $proto:ty, $cx:ident, $r:ident, $within:ident, $field:ident, $codec:ty,
        [] [] [] [$absent:expr]) => { $absent };
    (@whole $proto:ty, $cx:ident, $r:ident, $within:ident, $field:ident, $codec:ty,
        $s:tt $u:tt $f:tt [$absent:expr]) => {
        if $crate::wire_layout!(@gate $proto, $cx, $s $u $f) {
            $crate::wire_layout!(@whole $proto, $cx, $r, $within, $field, $codec, [] [] [] [])
        } else {
            $absent
        }
    };
    (@whole $proto:ty, $cx:ident, $r:ident, $within:ident, $field:ident, $codec:ty,
        $s:tt $u:tt $f:tt []) => {
        compile_error!("a gated field needs `= value`: what it is when absent")
    };

    // One field on the resuming path: decode it if it is its turn.
    (@resume $proto:ty, $cx:ident, $r:ident, $within:ident, $partial:ident, $index:ident,
        $field:ident, $codec:ty, [] [] [] []) => {
        let finished = $crate::wire::decode_field_with::<$proto, Self, _, $codec>(
            $cx, $partial, $index, $r, |s: &Self| &s.$field,
        )
        .map_err(|e| $within(e, stringify!($field)))?;
        if !finished {
            return Ok(None);
        }
    };
    (@resume $proto:ty, $cx:ident, $r:ident, $within:ident, $partial:ident, $index:ident,
        $field:ident, $codec:ty, [] [] [] [$absent:expr]) => {
        $partial.absent($index, |s: &Self| &s.$field, || $absent)
    };
    (@resume $proto:ty, $cx:ident, $r:ident, $within:ident, $partial:ident, $index:ident,
        $field:ident, $codec:ty, $s:tt $u:tt $f:tt [$absent:expr]) => {
        if $crate::wire_layout!(@gate $proto, $cx, $s $u $f) {
            $crate::wire_layout!(@resume $proto, $cx, $r, $within, $partial, $index,
                $field, $codec, [] [] [] []);
        } else {
            $crate::wire_layout!(@resume $proto, $cx, $r, $within, $partial, $index,
                $field, $codec, [] [] [] [$absent]);
        }
    };
    (@resume $proto:ty, $cx:ident, $r:ident, $within:ident, $partial:ident, $index:ident,
        $field:ident, $codec:ty, $s:tt $u:tt $f:tt []) => {
        compile_error!("a gated field needs `= value`: what it is when absent")
    };

    // Whether a gated field is on the wire at `cx`.
    (@gate $proto:ty, $cx:ident,
        [$($smaj:literal, $smin:literal)?] [$($umaj:literal, $umin:literal)?] [$($feat:literal)?]) => {
        true
        $( && {
            const { assert!($smaj == <$proto as $crate::wire::Protocol>::MAJOR,
                "a `since` gate of another protocol's major version") };
            $cx.version >= $crate::wire::Version::new($smaj, $smin)
        } )?
        $( && {
            const { assert!($umaj == <$proto as $crate::wire::Protocol>::MAJOR,
                "an `until` gate of another protocol's major version") };
            $cx.version < $crate::wire::Version::new($umaj, $umin)
        } )?
        $( && $cx.features.has($feat) )?
    };
}

/// Declares a struct and its one layout at once: its fields in wire order,
/// each with its doc comment and gates (see [`wire_layout!`](crate::wire_layout)
/// for the gate forms; here a field also states its type).
///
/// ```
/// nixwire_core::wire_message! {
///     /// An example with a field that appeared in 2.4.
///     pub struct Example in Serve {
///         /// Always present.
///         pub a: u64,
///         /// Only from protocol 2.4 on; empty before.
///         #[since(2, 4)]
///         pub b: nixwire_core::wire::NixString = Default::default(),
///     }
/// }
/// use nixwire_core::wire::{Cx, Serve, Version, Wire};
/// let out = Example { a: 1, b: "x".into() }.to_wire(&Cx::<Serve>::new(Version::new(2, 3)));
/// assert_eq!(out.len(), 8);
/// ```
#[macro_export]
macro_rules! wire_message {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident in $proto:ty {
            $(
                $(#[doc = $doc:literal])*
                $(#[since($smaj:literal, $smin:literal)])?
                $(#[until($umaj:literal, $umin:literal)])?
                $(#[feature($feat:literal)])?
                $(#[with($codec:ty)])?
                pub $field:ident : $ty:ty $(= $absent:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        $crate::wire_layout! {
            impl Wire<$proto> for $name {
                $(
                    $(#[since($smaj, $smin)])?
                    $(#[until($umaj, $umin)])?
                    $(#[feature($feat)])?
                    $(#[with($codec)])?
                    $field $(= $absent)?
                ),*
            }
        }
    };
}

/// Declares an enum carried as one u64 code on the wire, in every protocol.
/// An unknown code is a [`DecodeError`] naming the accepted codes.
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

            /// The variant's name.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => stringify!($variant), )*
                }
            }
        }

        impl<P: $crate::wire::Protocol> $crate::wire::Wire<P> for $name {
            type Partial = ();

            fn encode(&self, _cx: &$crate::wire::Cx<P>, out: &mut Vec<u8>) {
                $crate::wire::encode_u64(self.code(), out);
            }

            fn decode(
                _cx: &$crate::wire::Cx<P>,
                _partial: &mut (),
                r: &mut $crate::wire::Reader<'_>,
            ) -> $crate::wire::Decoded<Self> {
                let Some(code) = r.peek_u64() else {
                    return Ok(None);
                };
                match Self::from_code(code) {
                    Some(v) => {
                        r.u64();
                        Ok(Some(v))
                    }
                    None => Err($crate::wire::DecodeError::unexpected(
                        concat!($what, " (one of: ", $(stringify!($code), " ",)* ")"),
                        code.to_string(),
                    )),
                }
            }
        }
    };
}
