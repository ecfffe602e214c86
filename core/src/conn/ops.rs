//! The operation table: one row per operation, from which a protocol's
//! command codes, request and reply enums, names, version ranges, body and
//! reply kinds and the typed [`Op`](crate::serve::Op) trait are all derived.

/// Declares a protocol's operation table. Each row:
///
/// ```text
/// /// doc
/// CODE Name(RequestType) -> ReplyType, since (M, m), body BodyKind, reply ReplyKind;
/// ```
///
/// A row may name the feature an operation needs besides its version
/// (`since (1, 38), feature "queryPathInfos", body ...`): the worker
/// protocol's 1.38 feature exchange adds operations without a new version.
///
/// Adding an operation is one row plus the declarations of its request and
/// reply messages.
macro_rules! operations {
    (
        protocol $proto:ty;
        $(#[$cmeta:meta])*
        pub enum $command:ident ($what:literal);
        $(
            $(#[doc = $doc:literal])*
            $code:literal $op:ident($req:ty) -> $rep:ty,
                since ($smaj:literal, $smin:literal),
                $(feature $feat:literal,)?
                body $body:ident,
                reply $reply:ident;
        )*
    ) => {
        $crate::wire_enum! {
            $(#[$cmeta])*
            pub enum $command ($what) {
                $( $(#[doc = $doc])* $op = $code, )*
            }
        }

        impl $command {
            /// What follows the request's header on the wire.
            pub fn body(self) -> $crate::conn::BodyKind {
                match self {
                    $( Self::$op => $crate::conn::BodyKind::$body, )*
                }
            }

            /// How the reply travels.
            pub fn reply_kind(self) -> $crate::conn::ReplyKind {
                match self {
                    $( Self::$op => $crate::conn::ReplyKind::$reply, )*
                }
            }

            /// The first protocol version that has the operation.
            pub fn since(self) -> $crate::wire::Version {
                match self {
                    $( Self::$op => $crate::wire::Version::new($smaj, $smin), )*
                }
            }

            /// The feature both ends must have agreed for the operation, if
            /// it needs one besides its version.
            pub fn feature(self) -> Option<&'static str> {
                match self {
                    $( Self::$op => $crate::conn::feature_of(&[$($feat)?]), )*
                }
            }

            /// Whether the operation exists at `cx`'s version and features.
            pub fn available(self, cx: &$crate::wire::Cx<$proto>) -> bool {
                cx.version >= self.since() && self.feature().is_none_or(|f| cx.features.has(f))
            }
        }

        impl $crate::conn::OpCode for $command {
            fn op_name(self) -> &'static str {
                $command::name(self)
            }
        }

        impl $crate::conn::OpRequest for Request {
            type Code = $command;
            fn op(&self) -> $command {
                self.command()
            }
        }

        impl std::fmt::Display for $command {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// A request: one operation with its arguments.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request {
            $( $(#[doc = $doc])* $op($req), )*
        }

        /// A request's decode progress.
        #[derive(Debug, Default)]
        pub enum RequestPartial {
            /// Nothing decoded yet.
            #[default]
            Start,
            $(
                /// Decoding this operation's arguments.
                $op(<$req as $crate::wire::Wire<$proto>>::Partial),
            )*
        }

        impl Request {
            /// The operation.
            pub fn command(&self) -> $command {
                match self {
                    $( Self::$op(_) => $command::$op, )*
                }
            }

            /// Appends the operation's code and the request's message.
            pub fn encode(&self, cx: &$crate::wire::Cx<$proto>, out: &mut Vec<u8>) {
                $crate::wire::encode_u64(self.command().code(), out);
                match self {
                    $( Self::$op(m) => $crate::wire::Wire::<$proto>::encode(m, cx, out), )*
                }
            }

            /// Continues decoding a request: its code, then its message.
            pub fn decode(
                cx: &$crate::wire::Cx<$proto>,
                partial: &mut RequestPartial,
                r: &mut $crate::wire::Reader<'_>,
            ) -> $crate::wire::Decoded<Self> {
                if let RequestPartial::Start = partial {
                    let command = <$command as $crate::wire::Wire<$proto>>::decode(cx, &mut (), r)?;
                    match command {
                        None => return Ok(None),
                        $( Some($command::$op) => *partial = RequestPartial::$op(Default::default()), )*
                    }
                }
                match partial {
                    RequestPartial::Start => Ok(None),
                    $(
                        RequestPartial::$op(p) => {
                            let m = <$req as $crate::wire::Wire<$proto>>::decode(cx, p, r)
                                .map_err(|e| e.within(stringify!($op)))?;
                            Ok(m.map(Self::$op))
                        }
                    )*
                }
            }
        }

        $(
            impl From<$req> for Request {
                fn from(m: $req) -> Self {
                    Self::$op(m)
                }
            }
        )*

        /// A reply: the answer owned by one request. Replies are not
        /// self-describing; which one comes is known from the request.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Reply {
            $( $(#[doc = $doc])* $op($rep), )*
        }

        /// A reply's decode progress.
        #[derive(Debug, Default)]
        pub enum ReplyPartial {
            /// Nothing decoded yet.
            #[default]
            Start,
            $(
                /// Decoding this operation's reply.
                $op(<$rep as $crate::wire::Wire<$proto>>::Partial),
            )*
        }

        impl Reply {
            /// The operation this reply answers.
            pub fn command(&self) -> $command {
                match self {
                    $( Self::$op(_) => $command::$op, )*
                }
            }

            /// Appends the reply's message.
            pub fn encode(&self, cx: &$crate::wire::Cx<$proto>, out: &mut Vec<u8>) {
                match self {
                    $( Self::$op(m) => $crate::wire::Wire::<$proto>::encode(m, cx, out), )*
                }
            }

            /// Continues decoding the reply to `command`.
            pub fn decode(
                command: $command,
                cx: &$crate::wire::Cx<$proto>,
                partial: &mut ReplyPartial,
                r: &mut $crate::wire::Reader<'_>,
            ) -> $crate::wire::Decoded<Self> {
                if let ReplyPartial::Start = partial {
                    *partial = match command {
                        $( $command::$op => ReplyPartial::$op(Default::default()), )*
                    };
                }
                match partial {
                    ReplyPartial::Start => Ok(None),
                    $(
                        ReplyPartial::$op(p) => {
                            let m = <$rep as $crate::wire::Wire<$proto>>::decode(cx, p, r)
                                .map_err(|e| e.within(stringify!($op)).within("reply"))?;
                            Ok(m.map(Self::$op))
                        }
                    )*
                }
            }
        }

        /// An operation as a type: its request carries its reply type, so a
        /// typed reply needs no matching on [`Reply`].
        pub trait Op: Into<Request> {
            /// What the operation answers.
            type Reply;
            /// Its code.
            const COMMAND: $command;
            /// The typed reply, if `reply` answers this operation.
            // The error is the reply given back whole, as large as the
            // largest reply; boxing it would cost every typed reply an
            // allocation.
            #[allow(clippy::result_large_err)]
            fn reply_of(reply: Reply) -> Result<Self::Reply, Reply>;
        }

        $(
            impl Op for $req {
                type Reply = $rep;
                const COMMAND: $command = $command::$op;
                #[allow(clippy::result_large_err)]
                fn reply_of(reply: Reply) -> Result<$rep, Reply> {
                    match reply {
                        Reply::$op(r) => Ok(r),
                        #[allow(unreachable_patterns)]
                        other => Err(other),
                    }
                }
            }
        )*
    };
}

pub(crate) use operations;

/// The feature of a row: its one `feature "name"`, if it has one.
pub(crate) const fn feature_of(features: &[&'static str]) -> Option<&'static str> {
    match features {
        [feature] => Some(*feature),
        _ => None,
    }
}
