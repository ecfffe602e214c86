//! The worker protocol's messages, and its layouts of the shared store
//! types.
//!
//! Requests, replies and the worker-only shapes are declared here with
//! [`wire_message!`](crate::wire_message); [`PathInfo`] (Nix's
//! `UnkeyedValidPathInfo`), [`BuildResult`], [`BasicDerivation`] and the
//! unkeyed [`Realisation`] are the domain types of [`store`](crate::store),
//! laid out for this protocol with [`wire_layout!`](crate::wire_layout).
//! The shapes a field list cannot say (a value whose text form depends on
//! the version, a tag followed by a value, three dialects of one message)
//! implement [`Wire`] by hand, each next to the comment that says why.
//!
//! Every field is gated as Nix gates it. Three kinds of gate appear:
//! versions (`#[since(1, 29)]`), features agreed in the 1.38 handshake
//! (`#[feature("provenance")]`), and codecs that choose a shape by either
//! ([`BuiltOutputs`], [`DerivedPath`]'s text forms, [`DrvOutput`]).
//!
//! Facts are from Nix's `worker-protocol.cc`, `daemon.cc`,
//! `remote-store.cc`, `worker-protocol-connection.cc`, `derived-path.cc`
//! and `path-with-outputs.cc` (at 88b09c64 and at the tags of 2.3, 2.26 and
//! 2.34), and from Determinate Nix's (c407745c8) for its features.

use crate::store::{
    BasicDerivation, BuildResult, DerivationOutput, DerivedPath, DrvOutput, MAX_NESTING, NarHash,
    OutputName, PathInfo, Realisation, Signature, SingleDerivedPath, StorePath,
};
use crate::wire::{
    Base16Hash, BuiltOutputs, Codec, Cx, DecodeError, Decoded, NixString, OutputsShape, Reader,
    StructPartial, VecPartial, Version, Wire, Worker, encode_bytes, encode_u64,
};
use crate::{wire_enum, wire_layout, wire_message};

pub use crate::wire::{Ack, Done, NarDone};

use super::features;

// ---- shared shapes ----

wire_enum! {
    /// How `BuildPaths`, `BuildPathsWithResults` and `BuildDerivation`
    /// build.
    #[derive(Default)]
    pub enum BuildMode ("a build mode") {
        /// Build what is missing.
        #[default]
        Normal = 0,
        /// Rebuild and replace corrupted paths (trusted clients only).
        Repair = 1,
        /// Rebuild and compare with what is there.
        Check = 2,
    }
}

/// Declares requests without arguments: the command code is all of them.
macro_rules! unit_request {
    ($( $(#[$meta:meta])* $name:ident; )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl Wire<Worker> for $name {
            type Partial = ();

            fn encode(&self, _cx: &Cx<Worker>, _out: &mut Vec<u8>) {}

            fn decode(_cx: &Cx<Worker>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
                Ok(Some(Self))
            }
        }
    )*};
}

// ---- codecs: the same value in another shape ----

/// A NAR hash travels in the worker protocol as lowercase base 16 without
/// a prefix (`QueryPathHash`'s reply). Reading accepts every form Nix's
/// `parseAny` does.
impl Wire<Worker> for NarHash {
    type Partial = ();

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        <Base16Hash as Codec<Worker, Self>>::encode(self, cx, out);
    }

    fn decode(cx: &Cx<Worker>, partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        <Base16Hash as Codec<Worker, Self>>::decode(cx, partial, r)
    }
}

/// [`PathInfo::nar_hash`] in the worker protocol: always there, in base 16.
/// A path info without a hash (which only an old serve server produces)
/// is written as the empty string, which a peer refuses, as nixwire does
/// when reading.
#[derive(Debug)]
pub enum NarHashBase16 {}

impl Codec<Worker, Option<NarHash>> for NarHashBase16 {
    type Partial = ();

    fn encode(value: &Option<NarHash>, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match value {
            Some(hash) => hash.encode(cx, out),
            None => encode_bytes(b"", out),
        }
    }

    fn decode(cx: &Cx<Worker>, partial: &mut (), r: &mut Reader<'_>) -> Decoded<Option<NarHash>> {
        Ok(NarHash::decode(cx, partial, r)?.map(Some))
    }
}

/// Text that may be absent, sent as the empty string when it is (Determinate
/// Nix's provenance JSON).
#[derive(Debug)]
pub enum OptionalText {}

impl Codec<Worker, Option<NixString>> for OptionalText {
    type Partial = ();

    fn encode(value: &Option<NixString>, _cx: &Cx<Worker>, out: &mut Vec<u8>) {
        encode_bytes(value.as_ref().map_or(&[][..], NixString::as_bytes), out);
    }

    fn decode(
        _cx: &Cx<Worker>,
        _partial: &mut (),
        r: &mut Reader<'_>,
    ) -> Decoded<Option<NixString>> {
        Ok(r.string()?.map(|s| (!s.is_empty()).then_some(s)))
    }
}

/// A store path given as its base name, without the store directory
/// (`AddBuildLog`'s derivation: Nix's client sends `drvPath.to_string()`
/// and the daemon reads a bare `StorePath`).
#[derive(Debug)]
pub enum BaseName {}

impl Codec<Worker, StorePath> for BaseName {
    type Partial = ();

    fn encode(value: &StorePath, _cx: &Cx<Worker>, out: &mut Vec<u8>) {
        encode_bytes(value.base_name().as_bytes(), out);
    }

    fn decode(_cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<StorePath> {
        r.atomic(|r| match r.bytes()? {
            None => Ok(None),
            Some(bytes) => StorePath::from_base_name(bytes).map(Some).map_err(|e| {
                DecodeError::unexpected(
                    "a store path's base name",
                    format!("{} ({e})", crate::wire::show_bytes(bytes)),
                )
            }),
        })
    }
}

/// A duration in microseconds that may be unknown (`BuildResult`'s CPU
/// times from 1.37): a tag 0 or 1, then the value when 1. Nix reads the
/// value as a signed 64-bit number, so values above `i64::MAX` are refused.
#[derive(Debug)]
pub enum OptionalMicros {}

impl Codec<Worker, Option<u64>> for OptionalMicros {
    type Partial = ();

    fn encode(value: &Option<u64>, _cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match value {
            None => encode_u64(0, out),
            Some(micros) => {
                encode_u64(1, out);
                encode_u64(*micros, out);
            }
        }
    }

    fn decode(_cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Option<u64>> {
        r.atomic(|r| match r.u64() {
            None => Ok(None),
            Some(0) => Ok(Some(None)),
            Some(1) => match r.u64() {
                None => Ok(None),
                Some(micros) if i64::try_from(micros).is_ok() => Ok(Some(Some(micros))),
                Some(micros) => Err(DecodeError::unexpected(
                    "a duration of at most 2^63-1 microseconds",
                    micros.to_string(),
                )),
            },
            Some(tag) => Err(DecodeError::unexpected(
                "an optional duration's tag (0 or 1)",
                tag.to_string(),
            )),
        })
    }
}

// ---- derived paths and derivation outputs: text forms per version ----

/// A derived path is one string: from 1.30 Nix's legacy form
/// (`<drv>!<outputs>`, `*` for all), before it the older
/// `<path>!<name>,<name>` where a derivation's path alone means its outputs
/// (see [`DerivedPath`]).
///
/// What the older form cannot say (a derivation file itself, an output of
/// an output, an empty list of names) is written in the newer form, which
/// an old peer misreads or refuses; Nix's client refuses to send it.
/// [`DerivedPath::to_path_with_outputs`] says beforehand whether a path can
/// be sent.
impl Wire<Worker> for DerivedPath {
    type Partial = ();

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        let text = if cx.since(1, 30) {
            self.to_legacy_string(&cx.store_dir)
        } else {
            self.to_path_with_outputs(&cx.store_dir)
                .unwrap_or_else(|_| self.to_legacy_string(&cx.store_dir))
        };
        encode_bytes(text.as_bytes(), out);
    }

    fn decode(cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| {
            let Some(bytes) = r.bytes()? else {
                return Ok(None);
            };
            let parsed = if cx.since(1, 30) {
                Self::parse_legacy(&cx.store_dir, bytes)
            } else {
                Self::parse_path_with_outputs(&cx.store_dir, bytes)
            };
            parsed
                .map(Some)
                .map_err(|e| DecodeError::unexpected("a derived path", e.to_string()))
        })
    }
}

fn has_path_feature(cx: &Cx<Worker>) -> bool {
    cx.features.has(features::REALISATION_WITH_PATH_NOT_HASH)
}

/// A derivation output: with `realisation-with-path-not-hash`, the
/// derivation's full path then the output name (two strings); without it,
/// one string `<drv hash>!<output>`. Reading gives [`DrvOutput::Path`] or
/// [`DrvOutput::Hash`] accordingly. A value of the other kind is written in
/// a form the peer refuses (Nix refuses to send it at all).
impl Wire<Worker> for DrvOutput {
    type Partial = ();

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self {
            Self::Path { drv_path, output } if has_path_feature(cx) => {
                drv_path.encode(cx, out);
                output.encode(cx, out);
            }
            Self::Hash { drv_hash, output } if has_path_feature(cx) => {
                // The hash where a path belongs: the peer refuses it.
                encode_bytes(drv_hash.as_bytes(), out);
                output.encode(cx, out);
            }
            _ => encode_bytes(self.to_hash_form(&cx.store_dir).as_bytes(), out),
        }
    }

    fn decode(cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        if has_path_feature(cx) {
            return r.atomic(|r| {
                let Some(drv_path) = StorePath::decode(cx, &mut (), r)? else {
                    return Ok(None);
                };
                Ok(OutputName::decode(cx, &mut (), r)?
                    .map(|output| Self::Path { drv_path, output }))
            });
        }
        r.atomic(|r| match r.bytes()? {
            None => Ok(None),
            Some(bytes) => Self::parse_hash_form(bytes).map(Some).map_err(|why| {
                DecodeError::unexpected(
                    "a derivation output \"<hash>!<output>\"",
                    format!("{} ({why})", crate::wire::show_bytes(bytes)),
                )
            }),
        })
    }
}

wire_layout! {
    /// An unkeyed realisation (Nix's `UnkeyedRealisation`, with
    /// `realisation-with-path-not-hash`): the output path and its
    /// signatures; which output it is, is said around it.
    impl Wire<Worker> for Realisation {
        out_path,
        signatures,
        id = None,
    }
}

// ---- path infos ----

wire_layout! {
    /// Path metadata without the path (Nix's `UnkeyedValidPathInfo`): the
    /// deriver, the NAR hash in base 16, references, registration time and
    /// NAR size; from 1.16 `ultimate`, signatures and content address; with
    /// Determinate Nix's `provenance`, a JSON string (empty for none). The
    /// serve protocol's download size is not sent.
    impl Wire<Worker> for PathInfo {
        deriver,
        #[with(NarHashBase16)]
        nar_hash,
        references,
        registration_time,
        nar_size,
        #[since(1, 16)]
        ultimate = false,
        #[since(1, 16)]
        sigs = Vec::new(),
        #[since(1, 16)]
        ca = None,
        #[feature("provenance")]
        #[with(OptionalText)]
        provenance = None,
        download_size = 0,
    }
}

wire_message! {
    /// A path with its metadata (Nix's `ValidPathInfo`): the replies of
    /// `QueryPathInfos` and `AddToStore` (1.25+), and the items inside
    /// `AddMultipleToStore`'s body.
    pub struct ValidPathInfo in Worker {
        /// The path.
        pub path: StorePath,
        /// Its metadata.
        pub info: PathInfo,
    }
}

/// Implements a tagged optional layout for `Option<$t>`: a flag (0 or 1),
/// then the value when 1. (An optional store path is instead the empty
/// string, so this is not a blanket layout of `Option`.)
macro_rules! tagged_option {
    ($( $(#[$meta:meta])* $t:ty; )*) => {$(
        $(#[$meta])*
        impl Wire<Worker> for Option<$t> {
            type Partial = OptionalPartial;

            fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
                match self {
                    None => encode_u64(0, out),
                    Some(value) => {
                        encode_u64(1, out);
                        value.encode(cx, out);
                    }
                }
            }

            fn decode(
                cx: &Cx<Worker>,
                partial: &mut OptionalPartial,
                r: &mut Reader<'_>,
            ) -> Decoded<Self> {
                if partial.present.is_none() {
                    match bool::decode(cx, &mut (), r)? {
                        None => return Ok(None),
                        Some(false) => return Ok(Some(None)),
                        Some(true) => partial.present = Some(true),
                    }
                }
                let value = <$t>::decode(cx, &mut partial.value, r)?;
                if value.is_some() {
                    *partial = OptionalPartial::default();
                }
                Ok(value.map(Some))
            }
        }
    )*};
}

tagged_option! {
    /// `QueryPathInfo`'s reply: a flag (0 or 1), then the metadata when 1.
    /// (Before 1.17 there was no flag; nixwire speaks 1.21 and later.)
    PathInfo;
    /// `QuerySubstitutablePathInfo`'s reply: a flag, then the information
    /// when 1.
    SubstitutablePathInfo;
}

/// The progress of a tagged optional value: the tag once read, and the
/// value's progress.
#[derive(Debug, Default)]
pub struct OptionalPartial {
    present: Option<bool>,
    value: StructPartial,
}

wire_message! {
    /// What a substituter knows of a path it could provide.
    #[derive(Default)]
    pub struct SubstitutablePathInfo in Worker {
        /// The deriver, if known.
        pub deriver: Option<StorePath>,
        /// The references.
        pub references: Vec<StorePath>,
        /// Bytes to download (compressed).
        pub download_size: u64,
        /// The NAR's size.
        pub nar_size: u64,
    }
}

// ---- build results ----

wire_layout! {
    /// A build's outcome: status and message; from 1.29 timing; from 1.37
    /// CPU times; from 1.28 the built outputs (see [`BuiltOutputs`] for
    /// their shapes).
    impl Wire<Worker> for BuildResult {
        status,
        error_msg,
        #[since(1, 29)]
        times_built = 0,
        #[since(1, 29)]
        is_non_deterministic = false,
        #[since(1, 29)]
        start_time = 0,
        #[since(1, 29)]
        stop_time = 0,
        #[since(1, 37)]
        #[with(OptionalMicros)]
        cpu_user = None,
        #[since(1, 37)]
        #[with(OptionalMicros)]
        cpu_system = None,
        #[since(1, 28)]
        #[with(BuiltOutputs)]
        built_outputs = Vec::new(),
    }
}

/// Built outputs travel structured with `realisation-with-path-not-hash` (without it, from 1.28, JSON realisations: what older Nix wrote with the derivation's real hash, what newer Nix writes with a dummy hash; Nix checks the feature before the version, and features are only agreed at 1.38, so the field's 1.28 gate never hides a feature's map).
impl OutputsShape for Worker {
    fn structured_outputs(cx: &Cx<Self>) -> bool {
        has_path_feature(cx)
    }
}

wire_message! {
    /// A build result with the derived path it is for (Nix's
    /// `KeyedBuildResult`): `BuildPathsWithResults`' items.
    pub struct KeyedBuildResult in Worker {
        /// What was asked for.
        pub path: DerivedPath,
        /// What happened.
        pub result: BuildResult,
    }
}

// ---- derivations ----

wire_layout! {
    /// One output of a derivation: its name, its path or the empty string,
    /// and the content-addressing fields, empty when unused (as in the
    /// serve protocol).
    impl Wire<Worker> for DerivationOutput {
        name,
        path,
        hash_algo,
        hash,
    }
}

wire_layout! {
    /// A derivation with its inputs resolved (as in the serve protocol).
    impl Wire<Worker> for BasicDerivation {
        outputs,
        input_srcs,
        platform,
        builder,
        args,
        env,
    }
}

// ---- requests ----

wire_message! {
    /// Command 1: whether `path` is valid. Reply: `bool`.
    pub struct IsValidPath in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 3: whether a substitute for `path` exists. Reply: `bool`.
    /// Daemons from Nix 2.34 refuse it (use `QuerySubstitutablePaths`).
    pub struct HasSubstitutes in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 4: `path`'s NAR hash. Reply: [`NarHash`] in base 16.
    /// Daemons from Nix 2.34 refuse it (use `QueryPathInfo`).
    pub struct QueryPathHash in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 5: `path`'s references. Reply: the paths. Daemons from Nix
    /// 2.34 refuse it (use `QueryPathInfo`).
    pub struct QueryReferences in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 6: the valid paths referring to `path`. Reply: the paths.
    pub struct QueryReferrers in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 7: add a path made from data the client sends, named by
    /// content. One request, two forms:
    ///
    /// - before 1.25: the name, an obsolete `fixed` flag, whether the data
    ///   is a NAR (`recursive`) and the hash algorithm; the data follows as
    ///   a NAR with no length in front (even for a flat file, which is sent
    ///   as the NAR of one regular file). Reply: the path alone.
    /// - from 1.25: the name, the content-address method with its algorithm
    ///   (`fixed:r:sha256`, `text:sha256`, `fixed:git:sha1`, ...), the
    ///   references and `repair`; with Determinate Nix's `provenance`, a
    ///   JSON string. The data follows in frames. Reply: the path and its
    ///   metadata.
    ///
    /// Nix's client sends `fixed` 0 only for a SHA-256 NAR, and the daemon
    /// then takes a SHA-256 NAR whatever `recursive` and the algorithm say.
    #[derive(Default)]
    pub struct AddToStore in Worker {
        /// The name of the path to make. Nix checks it when it makes the
        /// path, so it is bytes here.
        pub name: NixString,
        /// Before 1.25: 0 for a SHA-256 NAR, 1 otherwise (Nix's
        /// compatibility hack).
        #[until(1, 25)]
        pub fixed: bool = false,
        /// Before 1.25: whether the data is hashed as a NAR (else as a flat
        /// file).
        #[until(1, 25)]
        pub recursive: bool = false,
        /// Before 1.25: the hash algorithm (`sha256`).
        #[until(1, 25)]
        pub hash_algo: NixString = NixString::new(),
        /// From 1.25: the content-address method and algorithm
        /// (`fixed:r:sha256`).
        #[since(1, 25)]
        pub method_algo: NixString = NixString::new(),
        /// From 1.25: the references of the path to make.
        #[since(1, 25)]
        pub references: Vec<StorePath> = Vec::new(),
        /// From 1.25: repair the path if it exists.
        #[since(1, 25)]
        pub repair: bool = false,
        /// From 1.25 with `provenance`: where it came from, as JSON.
        #[since(1, 25)]
        #[feature("provenance")]
        #[with(OptionalText)]
        pub provenance: Option<NixString> = None,
    }
}

wire_message! {
    /// `AddToStore`'s reply: the path made and, from 1.25, its metadata (the
    /// bytes of a [`ValidPathInfo`]). Before 1.25 only the path comes; the
    /// metadata is then [`PathInfo::default`] (Nix's client asks
    /// `QueryPathInfo`).
    pub struct AddToStoreResult in Worker {
        /// The path made.
        pub path: StorePath,
        /// Its metadata, from 1.25.
        #[since(1, 25)]
        pub info: PathInfo = PathInfo::default(),
    }
}

wire_message! {
    /// Command 8: add a text file (content-addressed with `text:sha256`).
    /// Obsolete since 1.25, when `AddToStore` took over; Nix 2.3's client
    /// uses it. Reply: the path.
    pub struct AddTextToStore in Worker {
        /// The name of the path to make.
        pub name: NixString,
        /// The file's contents (in the message, not a body).
        pub text: NixString,
        /// Its references.
        pub references: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 9: build or substitute derived paths. Reply: [`Ack`] (a
    /// failure is an error in the log stream).
    pub struct BuildPaths in Worker {
        /// What to realise.
        pub paths: Vec<DerivedPath>,
        /// How.
        pub mode: BuildMode,
    }
}

wire_message! {
    /// Command 10: make `path` valid, substituting it if needed. Reply:
    /// [`Ack`].
    pub struct EnsurePath in Worker {
        /// The path.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 11: protect `path` from the garbage collector while the
    /// connection lasts. Reply: [`Ack`].
    pub struct AddTempRoot in Worker {
        /// The path.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 19: the client's settings (Nix's `ClientSettings`). Sent
    /// once after the handshake, unless the peers agreed
    /// `disable-set-options`. Reply: [`Done`].
    ///
    /// The flags are read by Nix as integers (any non-zero is true) and
    /// written as 0 or 1; the obsolete fields are kept so that what was read
    /// is written back byte for byte.
    pub struct SetOptions in Worker {
        /// Keep the build directories of failed builds.
        pub keep_failed: bool,
        /// Keep going after a build fails.
        pub keep_going: bool,
        /// Build from source when substitution fails.
        pub try_fallback: bool,
        /// Nix's verbosity (0 error, 1 warn, 2 notice, 3 info, 4
        /// talkative, 5 chatty, 6 debug, 7 vomit).
        pub verbosity: u64,
        /// `max-jobs`.
        pub max_build_jobs: u64,
        /// `max-silent-time`, seconds.
        pub max_silent_time: u64,
        /// Obsolete (`useBuildHook`); Nix sends 1 and ignores it.
        pub obsolete_use_build_hook: u64,
        /// A verbosity: 0 (error) means verbose builds; Nix sends 7
        /// (vomit) otherwise.
        pub verbose_build: u64,
        /// Obsolete (`logType`); Nix sends 0.
        pub obsolete_log_type: u64,
        /// Obsolete (`printBuildTrace`); Nix sends 0.
        pub obsolete_print_build_trace: u64,
        /// `cores`.
        pub build_cores: u64,
        /// `substitute`.
        pub use_substitutes: bool,
        /// Other settings by name (Nix sends every setting that differs
        /// from its default; the daemon applies the ones the client may
        /// set). Bytes both: the daemon parses each by its setting's type.
        pub overrides: Vec<(NixString, NixString)>,
    }
}

/// Nix's own name for the settings `SetOptions` carries.
pub type ClientSettings = SetOptions;

impl Default for SetOptions {
    /// What Nix's client sends with default settings and no overrides.
    fn default() -> Self {
        Self {
            keep_failed: false,
            keep_going: false,
            try_fallback: false,
            verbosity: 0,
            max_build_jobs: 1,
            max_silent_time: 0,
            obsolete_use_build_hook: 1,
            verbose_build: 7,
            obsolete_log_type: 0,
            obsolete_print_build_trace: 0,
            build_cores: 0,
            use_substitutes: true,
            overrides: Vec::new(),
        }
    }
}

wire_message! {
    /// Command 26: `path`'s metadata. Reply: `Option<PathInfo>` (a flag,
    /// then the metadata when the path is valid).
    pub struct QueryPathInfo in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 31: which of `paths` are valid. Reply: the valid paths.
    #[derive(Default)]
    pub struct QueryValidPaths in Worker {
        /// The paths asked about.
        pub paths: Vec<StorePath>,
        /// From 1.27: substitute the missing ones first.
        #[since(1, 27)]
        pub substitute: bool = false,
    }
}

wire_message! {
    /// Command 33: the derivations known to produce `path`. Reply: their
    /// paths.
    pub struct QueryValidDerivers in Worker {
        /// An output path.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 36: build a derivation sent inline. Reply: [`BuildResult`].
    pub struct BuildDerivation in Worker {
        /// The derivation's store path (it need not exist on the server).
        pub drv_path: StorePath,
        /// The derivation, inputs already resolved to store paths.
        pub drv: BasicDerivation,
        /// How to build.
        pub mode: BuildMode,
    }
}

wire_message! {
    /// Command 37: add signatures to `path`. Reply: [`Ack`].
    pub struct AddSignatures in Worker {
        /// The path.
        pub path: StorePath,
        /// The signatures to add.
        pub sigs: Vec<Signature>,
    }
}

wire_message! {
    /// Command 38: the NAR of `path`. Reply: the NAR after the log stream,
    /// with no length in front ([`NarDone`] when it has passed).
    pub struct NarFromPath in Worker {
        /// The path to serialise.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 39: add one path with its metadata; its NAR follows (from
    /// 1.23 in frames, before that pulled by the daemon with `STDERR_READ`).
    /// Reply: [`Done`].
    pub struct AddToStoreNar in Worker {
        /// The path being added.
        pub path: StorePath,
        /// Its deriver, if known.
        pub deriver: Option<StorePath>,
        /// The NAR's SHA-256 (in base 16 without a prefix).
        #[with(Base16Hash)]
        pub nar_hash: NarHash,
        /// Its references.
        pub references: Vec<StorePath>,
        /// Registration time, seconds since the epoch.
        pub registration_time: u64,
        /// The NAR's size in bytes.
        pub nar_size: u64,
        /// Whether it was built locally (the daemon drops it for untrusted
        /// clients).
        pub ultimate: bool,
        /// Signatures.
        pub sigs: Vec<Signature>,
        /// Content address, if any.
        pub ca: Option<crate::store::ContentAddress>,
        /// With `provenance`: where it came from, as JSON.
        #[feature("provenance")]
        #[with(OptionalText)]
        pub provenance: Option<NixString> = None,
        /// Repair the path if it exists.
        pub repair: bool,
        /// Skip the signature check (trusted clients only).
        pub dont_check_sigs: bool,
    }
}

impl AddToStoreNar {
    /// The request adding `path` with the metadata in `info`, or `None` if
    /// `info` has no NAR hash (the daemon needs it).
    pub fn new(
        path: StorePath,
        info: &PathInfo,
        repair: bool,
        dont_check_sigs: bool,
    ) -> Option<Self> {
        Some(Self {
            path,
            deriver: info.deriver.clone(),
            nar_hash: info.nar_hash?,
            references: info.references.clone(),
            registration_time: info.registration_time,
            nar_size: info.nar_size,
            ultimate: info.ultimate,
            sigs: info.sigs.clone(),
            ca: info.ca,
            provenance: info.provenance.clone(),
            repair,
            dont_check_sigs,
        })
    }
}

wire_message! {
    /// Command 40: what realising `targets` would build, substitute, or
    /// not know how to make. Reply: [`Missing`].
    pub struct QueryMissing in Worker {
        /// What would be realised.
        pub targets: Vec<DerivedPath>,
    }
}

wire_message! {
    /// `QueryMissing`'s reply.
    #[derive(Default)]
    pub struct Missing in Worker {
        /// Derivations that would be built.
        pub will_build: Vec<StorePath>,
        /// Paths that would be substituted.
        pub will_substitute: Vec<StorePath>,
        /// Paths that could be neither.
        pub unknown: Vec<StorePath>,
        /// Bytes to download for the substitutions.
        pub download_size: u64,
        /// Their NARs' size in bytes.
        pub nar_size: u64,
    }
}

wire_message! {
    /// Command 41 (1.22+): a derivation's outputs and their paths where
    /// known. Reply: pairs of output name and path (empty string when not
    /// known).
    pub struct QueryDerivationOutputMap in Worker {
        /// The derivation.
        pub path: StorePath,
    }
}

/// Command 42 (1.27+): record that a derivation output was built to a path.
/// Reply: [`Done`].
///
/// Three shapes, as Nix's client chooses them:
/// - with `realisation-with-path-not-hash`: the [`DrvOutput`] (derivation
///   path, output name), then the unkeyed realisation (path, signatures);
/// - from 1.31 without it: one JSON string with the id
///   (`<drv hash>!<output>`), the path's base name, the signatures and no
///   dependent realisations ([`Realisation::to_json`]);
/// - before 1.31: the id string, then the path's base name (signatures are
///   not sent).
///
/// `realisation.id` is the output: it must be there (an empty id is written
/// otherwise, which a peer refuses), and it is always there when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterDrvOutput {
    /// The realisation, keyed by its output.
    pub realisation: Realisation,
}

/// [`RegisterDrvOutput`]'s progress in the structured shape: the id, then
/// the unkeyed realisation.
pub type RegisterDrvOutputPartial = <(DrvOutput, Realisation) as Wire<Worker>>::Partial;

impl Wire<Worker> for RegisterDrvOutput {
    type Partial = RegisterDrvOutputPartial;

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        let r = &self.realisation;
        if has_path_feature(cx) {
            match &r.id {
                Some(id) => id.encode(cx, out),
                None => {
                    encode_bytes(b"", out);
                    encode_bytes(b"", out);
                }
            }
            r.encode(cx, out);
        } else if cx.since(1, 31) {
            encode_bytes(r.to_json(&cx.store_dir).as_bytes(), out);
        } else {
            let id = r.id.as_ref().map(|id| id.to_hash_form(&cx.store_dir));
            encode_bytes(id.unwrap_or_default().as_bytes(), out);
            encode_bytes(r.out_path.base_name().as_bytes(), out);
        }
    }

    fn decode(cx: &Cx<Worker>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        if has_path_feature(cx) {
            return Ok(
                <(DrvOutput, Realisation) as Wire<Worker>>::decode(cx, partial, r)?.map(
                    |(id, realisation)| Self {
                        realisation: Realisation {
                            id: Some(id),
                            ..realisation
                        },
                    },
                ),
            );
        }
        if cx.since(1, 31) {
            return r.atomic(|r| match r.bytes()? {
                None => Ok(None),
                Some(json) => Realisation::from_json(json, &cx.store_dir)
                    .map(|realisation| Some(Self { realisation }))
                    .map_err(|why| {
                        DecodeError::unexpected(
                            "a JSON realisation",
                            format!("{} ({why})", crate::wire::show_bytes(json)),
                        )
                    }),
            });
        }
        r.atomic(|r| {
            let Some(id) = DrvOutput::decode(cx, &mut (), r)? else {
                return Ok(None);
            };
            let Some(out_path) = BaseName::decode(cx, &mut (), r)? else {
                return Ok(None);
            };
            Ok(Some(Self {
                realisation: Realisation {
                    id: Some(id),
                    out_path,
                    signatures: Vec::new(),
                },
            }))
        })
    }
}

wire_message! {
    /// Command 43 (1.27+): the realisation of a derivation output, if
    /// known. Reply: `Option<Realisation>` (see its layout for the shapes).
    pub struct QueryRealisation in Worker {
        /// The output: by path with `realisation-with-path-not-hash`, by
        /// hash without.
        pub id: DrvOutput,
    }
}

/// `QueryRealisation`'s reply, in three shapes:
/// - with `realisation-with-path-not-hash`: a tag (0 or 1), then the
///   unkeyed realisation when 1 (its `id` is `None`: the request said it);
/// - from 1.31 without it: a set of JSON realisations, none or one
///   (each with its id);
/// - before 1.31: a set of output paths, none or one (no id, no
///   signatures).
///
/// Nix sends at most one; a set of more is refused.
impl Wire<Worker> for Option<Realisation> {
    type Partial = QueryRealisationPartial;

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        if has_path_feature(cx) {
            match self {
                None => encode_u64(0, out),
                Some(r) => {
                    encode_u64(1, out);
                    r.encode(cx, out);
                }
            }
            return;
        }
        encode_u64(u64::from(self.is_some()), out);
        if let Some(r) = self {
            if cx.since(1, 31) {
                encode_bytes(r.to_json(&cx.store_dir).as_bytes(), out);
            } else {
                r.out_path.encode(cx, out);
            }
        }
    }

    fn decode(cx: &Cx<Worker>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        let at_most_one =
            |n: usize| DecodeError::unexpected("at most one realisation", format!("{n} of them"));
        if has_path_feature(cx) {
            if partial.present.is_none() {
                match bool::decode(cx, &mut (), r)? {
                    None => return Ok(None),
                    Some(false) => return Ok(Some(None)),
                    Some(true) => partial.present = Some(true),
                }
            }
            let value = Realisation::decode(cx, &mut partial.value, r)?;
            if value.is_some() {
                *partial = QueryRealisationPartial::default();
            }
            return Ok(value.map(Some));
        }
        if cx.since(1, 31) {
            let Some(jsons) = Vec::<NixString>::decode(cx, &mut partial.jsons, r)? else {
                return Ok(None);
            };
            return match jsons.as_slice() {
                [] => Ok(Some(None)),
                [json] => Realisation::from_json(json.as_bytes(), &cx.store_dir)
                    .map(|r| Some(Some(r)))
                    .map_err(|why| {
                        DecodeError::unexpected("a JSON realisation", format!("{json:?} ({why})"))
                    }),
                more => Err(at_most_one(more.len())),
            };
        }
        let Some(paths) = Vec::<StorePath>::decode(cx, &mut partial.paths, r)? else {
            return Ok(None);
        };
        match <[StorePath; 1]>::try_from(paths) {
            Ok([out_path]) => Ok(Some(Some(Realisation {
                id: None,
                out_path,
                signatures: Vec::new(),
            }))),
            Err(paths) if paths.is_empty() => Ok(Some(None)),
            Err(paths) => Err(at_most_one(paths.len())),
        }
    }
}

/// The progress of a `QueryRealisation` reply in any of its shapes.
#[derive(Debug, Default)]
pub struct QueryRealisationPartial {
    present: Option<bool>,
    value: StructPartial,
    jsons: VecPartial<NixString, ()>,
    paths: VecPartial<StorePath, ()>,
}

wire_message! {
    /// Command 44 (1.32+): add many paths at once. Only `repair` and
    /// `dont_check_sigs` are in the header; the body, in frames, is a
    /// count followed by each path's [`ValidPathInfo`] and NAR. Reply:
    /// [`Done`].
    ///
    /// The path infos in the body are encoded at protocol 1.16 with no
    /// features (Nix's fixed choice), or at the negotiated version and
    /// features with Determinate Nix's `versionedAddToStoreMultiple`: see
    /// [`AddMultipleToStore::item_cx`].
    pub struct AddMultipleToStore in Worker {
        /// Repair paths that exist.
        pub repair: bool,
        /// Skip the signature checks (trusted clients only).
        pub dont_check_sigs: bool,
    }
}

impl AddMultipleToStore {
    /// The version inside the body: the context each [`ValidPathInfo`] of
    /// the body is encoded and decoded with, given the connection's.
    pub fn item_cx(cx: &Cx<Worker>) -> Cx<Worker> {
        if cx.features.has(features::VERSIONED_ADD_TO_STORE_MULTIPLE) {
            cx.clone()
        } else {
            Cx::new(Version::new(1, 16))
                .with_store_dir(cx.store_dir.clone())
                .with_limits(cx.limits)
        }
    }
}

wire_message! {
    /// Command 45 (1.32+): store a build log for a derivation; the log
    /// follows in frames. Reply: [`Ack`].
    pub struct AddBuildLog in Worker {
        /// The derivation, sent as its base name (not a full path).
        #[with(BaseName)]
        pub drv_path: StorePath,
    }
}

wire_message! {
    /// Command 46 (1.34+): like `BuildPaths`, with a result per path.
    /// Reply: the [`KeyedBuildResult`]s.
    pub struct BuildPathsWithResults in Worker {
        /// What to realise.
        pub paths: Vec<DerivedPath>,
        /// How.
        pub mode: BuildMode,
    }
}

unit_request! {
    /// Command 48 (Determinate Nix, feature `queryActiveBuilds`): the
    /// builds under way on the daemon. Reply: JSON text (a list of Nix's
    /// `ActiveBuildInfo`), kept as bytes.
    QueryActiveBuilds;
}

wire_message! {
    /// Command 49 (Determinate Nix, feature `addTempRoots`): `AddTempRoot`
    /// for many paths in one round trip. Reply: [`Ack`].
    pub struct AddTempRoots in Worker {
        /// The paths to protect.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 50 (Determinate Nix, feature `queryPathInfos`):
    /// `QueryPathInfo` for many paths in one round trip. Reply: the
    /// [`ValidPathInfo`]s of the valid ones (invalid paths are left out).
    pub struct QueryPathInfos in Worker {
        /// The paths asked about.
        pub paths: Vec<StorePath>,
    }
}

// ---- the other operations Nix answers ----
//
// Not needed to copy paths or build remotely; here so that every operation
// a Nix daemon answers is known, decodes and can be answered.

wire_message! {
    /// Command 12: make `path` (outside the store, a symlink into it) an
    /// indirect garbage-collector root. Reply: [`Ack`].
    pub struct AddIndirectRoot in Worker {
        /// An absolute path on the daemon's machine (Nix makes it absolute
        /// against the daemon's directory), bytes.
        pub path: NixString,
    }
}

unit_request! {
    /// Command 13: obsolete; daemons answer at once. Reply: [`Ack`].
    SyncWithGC;
    /// Command 14: the garbage collector's roots. Reply: (link, store
    /// path) pairs; untrusted clients see censored links.
    FindRoots;
    /// Command 23: every valid path. Reply: the paths.
    QueryAllValidPaths;
    /// Command 34: deduplicate the store's files. Reply: [`Ack`].
    OptimiseStore;
}

wire_message! {
    /// Command 18 (obsolete): `path`'s deriver. Reply: the deriver or the
    /// empty string.
    pub struct QueryDeriver in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_enum! {
    /// What `CollectGarbage` does.
    pub enum GcAction ("a garbage collector action") {
        /// List the live paths.
        ReturnLive = 0,
        /// List the dead paths.
        ReturnDead = 1,
        /// Delete dead paths.
        DeleteDead = 2,
        /// Delete the given paths, which must be dead.
        DeleteSpecific = 3,
    }
}

/// Which paths `CollectGarbage` considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcPaths {
    /// The whole store.
    WholeStore,
    /// These paths.
    Specific {
        /// The paths.
        paths: Vec<StorePath>,
        /// Delete what refers to them too (only with
        /// `delete-dead-specific-referrers`).
        delete_referrers: bool,
    },
}

/// Command 20: collect garbage. Reply: [`GcResults`].
///
/// With `delete-dead-specific-referrers` the paths are a tag (0: these
/// paths, then the paths and `delete_referrers`; 1: the whole store).
/// Without it, a set of paths, empty meaning the whole store unless the
/// action is `DeleteSpecific` (so `delete_referrers` cannot be said, nor
/// an empty specific set for the other actions). Then `ignore_liveness`,
/// `max_freed` and three obsolete integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectGarbage {
    /// What to do.
    pub action: GcAction,
    /// Which paths.
    pub paths: GcPaths,
    /// Ignore the roots (daemons refuse it).
    pub ignore_liveness: bool,
    /// Stop after freeing this many bytes.
    pub max_freed: u64,
    /// Three obsolete integers; Nix sends 0.
    pub obsolete: [u64; 3],
}

/// [`CollectGarbage`]'s progress: the action, the tag of the featured
/// form, the paths.
#[derive(Debug, Default)]
pub struct CollectGarbagePartial {
    action: Option<GcAction>,
    specific: Option<bool>,
    list: VecPartial<StorePath, ()>,
    listed: Option<Vec<StorePath>>,
    paths: Option<GcPaths>,
}

impl Wire<Worker> for CollectGarbage {
    type Partial = CollectGarbagePartial;

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        self.action.encode(cx, out);
        let featured = cx.features.has(features::DELETE_DEAD_SPECIFIC_REFERRERS);
        match (&self.paths, featured) {
            (GcPaths::WholeStore, true) => encode_u64(1, out),
            (
                GcPaths::Specific {
                    paths,
                    delete_referrers,
                },
                true,
            ) => {
                encode_u64(0, out);
                paths.encode(cx, out);
                delete_referrers.encode(cx, out);
            }
            (GcPaths::WholeStore, false) => encode_u64(0, out),
            (GcPaths::Specific { paths, .. }, false) => paths.encode(cx, out),
        }
        self.ignore_liveness.encode(cx, out);
        encode_u64(self.max_freed, out);
        for n in self.obsolete {
            encode_u64(n, out);
        }
    }

    fn decode(cx: &Cx<Worker>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        let action = match partial.action {
            Some(action) => action,
            None => match GcAction::decode(cx, &mut (), r)? {
                Some(action) => *partial.action.insert(action),
                None => return Ok(None),
            },
        };
        if partial.paths.is_none() {
            let featured = cx.features.has(features::DELETE_DEAD_SPECIFIC_REFERRERS);
            if featured && partial.specific.is_none() {
                match r.peek_u64() {
                    None => return Ok(None),
                    Some(tag @ (0 | 1)) => {
                        r.u64();
                        partial.specific = Some(tag == 0);
                    }
                    Some(tag) => {
                        return Err(DecodeError::unexpected(
                            "the whole-store flag (0 or 1)",
                            tag.to_string(),
                        )
                        .within("CollectGarbage"));
                    }
                }
            }
            if featured && partial.specific == Some(false) {
                partial.paths = Some(GcPaths::WholeStore);
            } else {
                if partial.listed.is_none() {
                    let Some(paths) = Vec::<StorePath>::decode(cx, &mut partial.list, r)
                        .map_err(|e| e.within("paths").within("CollectGarbage"))?
                    else {
                        return Ok(None);
                    };
                    partial.listed = Some(paths);
                }
                if featured {
                    let Some(delete_referrers) = bool::decode(cx, &mut (), r)? else {
                        return Ok(None);
                    };
                    let paths = partial.listed.take().unwrap_or_default();
                    partial.paths = Some(GcPaths::Specific {
                        paths,
                        delete_referrers,
                    });
                } else {
                    let paths = partial.listed.take().unwrap_or_default();
                    partial.paths =
                        Some(if paths.is_empty() && action != GcAction::DeleteSpecific {
                            GcPaths::WholeStore
                        } else {
                            GcPaths::Specific {
                                paths,
                                delete_referrers: false,
                            }
                        });
                }
            }
        }
        let tail = r.atomic(|r| {
            let Some(ignore_liveness) = bool::decode(cx, &mut (), r)? else {
                return Ok(None);
            };
            let mut words = [0u64; 4];
            for word in &mut words {
                let Some(n) = r.u64() else {
                    return Ok(None);
                };
                *word = n;
            }
            Ok(Some((ignore_liveness, words)))
        })?;
        let Some((ignore_liveness, [max_freed, a, b, c])) = tail else {
            return Ok(None);
        };
        let paths = partial.paths.take().unwrap_or(GcPaths::WholeStore);
        *partial = CollectGarbagePartial::default();
        Ok(Some(Self {
            action,
            paths,
            ignore_liveness,
            max_freed,
            obsolete: [a, b, c],
        }))
    }
}

wire_message! {
    /// `CollectGarbage`'s reply.
    #[derive(Default)]
    pub struct GcResults in Worker {
        /// The paths listed or deleted, as full paths (bytes).
        pub paths: Vec<NixString>,
        /// Bytes freed.
        pub bytes_freed: u64,
        /// Obsolete; Nix sends 0.
        pub obsolete: u64,
    }
}

wire_message! {
    /// Command 21: what substituters know of `path`. Reply:
    /// `Option<SubstitutablePathInfo>`.
    pub struct QuerySubstitutablePathInfo in Worker {
        /// The path asked about.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 22 (obsolete: clients from 1.22 read the derivation
    /// instead): a derivation's output paths. Reply: the paths.
    pub struct QueryDerivationOutputs in Worker {
        /// The derivation.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 28 (obsolete): a derivation's output names. Reply: the
    /// names.
    pub struct QueryDerivationOutputNames in Worker {
        /// The derivation.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 29: the valid path with this hash part. Reply: the path or
    /// the empty string.
    pub struct QueryPathFromHashPart in Worker {
        /// The 32 characters of a store path's hash part (bytes: Nix looks
        /// it up as given).
        pub hash_part: NixString,
    }
}

wire_message! {
    /// Command 30: what substituters know of these paths. Before 1.22 a
    /// set of paths; from 1.22 each with its content address (empty for
    /// none). Reply: (path, [`SubstitutablePathInfo`]) pairs for the paths
    /// some substituter has.
    #[derive(Default)]
    pub struct QuerySubstitutablePathInfos in Worker {
        /// Before 1.22: the paths.
        #[until(1, 22)]
        pub paths: Vec<StorePath> = Vec::new(),
        /// From 1.22: the paths and their content addresses.
        #[since(1, 22)]
        pub paths_with_ca: Vec<(StorePath, Option<crate::store::ContentAddress>)> = Vec::new(),
    }
}

wire_message! {
    /// Command 32: which of `paths` some substituter has. Reply: those.
    pub struct QuerySubstitutablePaths in Worker {
        /// The paths asked about.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 35: check the store's consistency. Reply: `bool`, whether
    /// errors were found.
    pub struct VerifyStore in Worker {
        /// Also check every path's contents against its hash.
        pub check_contents: bool,
        /// Repair what is broken (trusted clients only).
        pub repair: bool,
    }
}

wire_message! {
    /// Command 47 (1.36+): make `gc_root` (a path on the daemon's machine)
    /// a permanent root pointing at `path`. Reply: the root's absolute
    /// path. Trusted clients only.
    pub struct AddPermRoot in Worker {
        /// The store path to protect.
        pub path: StorePath,
        /// Where the root goes (bytes).
        pub gc_root: NixString,
    }
}

// ---- operations inside builds (upstream's `builder-rpc-v0`) ----

/// A single derived path in binary form, as `SubmitOutput` sends it: tag 0
/// and a store path, or tag 1, the derivation (recursively) and an output
/// name.
impl Wire<Worker> for SingleDerivedPath {
    type Partial = ();

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self {
            Self::Opaque(path) => {
                encode_u64(0, out);
                path.encode(cx, out);
            }
            Self::Built { drv_path, output } => {
                encode_u64(1, out);
                drv_path.encode(cx, out);
                output.encode(cx, out);
            }
        }
    }

    /// Taken whole: it is a handful of strings. Nesting is bounded by
    /// [`MAX_NESTING`], so hostile input cannot exhaust the stack.
    fn decode(cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| {
            // The tags of the nested levels first, down to the store path;
            // then the output names on the way back up.
            let mut levels = 0usize;
            loop {
                match r.u64() {
                    None => return Ok(None),
                    Some(0) => break,
                    Some(1) if levels < MAX_NESTING => levels += 1,
                    Some(1) => {
                        return Err(DecodeError::unexpected(
                            format!("a derived path nested at most {MAX_NESTING} deep"),
                            "a deeper one",
                        ));
                    }
                    Some(tag) => {
                        return Err(DecodeError::unexpected(
                            "a single derived path's tag (0 or 1)",
                            tag.to_string(),
                        ));
                    }
                }
            }
            let Some(mut path) = StorePath::decode(cx, &mut (), r)?.map(Self::Opaque) else {
                return Ok(None);
            };
            for _ in 0..levels {
                let Some(output) = OutputName::decode(cx, &mut (), r)? else {
                    return Ok(None);
                };
                path = Self::Built {
                    drv_path: Box::new(path),
                    output,
                };
            }
            Ok(Some(path))
        })
    }
}

wire_message! {
    /// Command 1000 (upstream, inside builds with `submit-output`): declare
    /// that `path` is the build's output `output`. Reply: [`Ack`].
    pub struct SubmitOutput in Worker {
        /// What the output is.
        pub path: SingleDerivedPath,
        /// Which output of the build.
        pub output: OutputName,
    }
}

wire_message! {
    /// Command 1001 (upstream, inside builds with `add-to-store-scanning`):
    /// like `AddToStore` from 1.25, with the references found by scanning
    /// the data. The data follows in frames. Reply: [`ValidPathInfo`].
    pub struct AddToStoreScanning in Worker {
        /// The name of the path to make.
        pub name: NixString,
        /// The content-address method and algorithm (`fixed:r:sha256`).
        pub method_algo: NixString,
    }
}
