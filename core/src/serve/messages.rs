//! The serve protocol's messages, and its layouts of the shared store
//! types.
//!
//! Requests and the few serve-only shapes are declared here with
//! [`wire_message!`](crate::wire_message); [`BuildResult`], [`PathInfo`],
//! [`BasicDerivation`] and [`Realisation`] are the domain types of
//! [`store`](crate::store), laid out for this protocol with
//! [`wire_layout!`](crate::wire_layout). The shapes a field list cannot say
//! (a list ended by an empty string, a constant, a field whose meaning
//! depends on another) implement [`Wire`] by hand, each next to the comment
//! that says why.
//!
//! Facts are from Nix's `serve-protocol.cc`, `serve-protocol-connection.cc`,
//! `export-import.cc` and `nix-store --serve`.

use crate::store::{
    BasicDerivation, BuildResult, ContentAddress, DerivationOutput, NarHash, PathInfo, Realisation,
    Signature, StorePath,
};
use crate::wire::{
    Base16Hash, BuiltOutputs, Cx, DecodeError, Decoded, NixString, OutputsShape, PrefixedNix32Hash,
    Reader, Serve, StructPartial, Version, Wire, encode_bytes, encode_u64,
};
use crate::{wire_layout, wire_message};

pub use crate::wire::{Ack, NarDone};

/// The newest serve protocol version this crate speaks.
pub const LATEST: Version = Version::new(2, 8);

/// The magic a client sends first (`SERVE_MAGIC_1`).
pub const CLIENT_MAGIC: u64 = 0x390c_9deb;

/// The magic a server answers with (`SERVE_MAGIC_2`).
pub const SERVER_MAGIC: u64 = 0x5452_eecb;

/// The magic in front of each path's metadata in the export format
/// (`ImportPaths`): "NIXE" in little-endian.
pub const EXPORT_MAGIC: u64 = 0x4558_494e;

wire_message! {
    /// The client's first message: [`CLIENT_MAGIC`] and the version it
    /// speaks. (The connection checks the magic before decoding this, so a
    /// wrong one is reported with the text that came instead.)
    pub struct ClientHello in Serve {
        /// [`CLIENT_MAGIC`].
        pub magic: u64,
        /// The client's version, `major << 8 | minor`.
        pub version: u64,
    }
}

wire_message! {
    /// The server's answer: [`SERVER_MAGIC`] and the version it speaks. Both
    /// sides then speak the smaller version.
    pub struct ServerHello in Serve {
        /// [`SERVER_MAGIC`].
        pub magic: u64,
        /// The server's version, `major << 8 | minor`.
        pub version: u64,
    }
}

wire_message! {
    /// Command 1: which of `paths` are valid. With `lock`, a server running
    /// `--write` adds temporary GC roots for them; with `substitute` it first
    /// tries to substitute the missing ones. Reply: the valid paths.
    #[derive(Default)]
    pub struct QueryValidPaths in Serve {
        /// Protect the paths from the server's garbage collector.
        pub lock: bool,
        /// Let the server substitute missing paths.
        pub substitute: bool,
        /// The paths asked about.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 2: metadata of `paths`. Reply: [`PathInfos`].
    #[derive(Default)]
    pub struct QueryPathInfos in Serve {
        /// The paths asked about; invalid ones are left out of the reply.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 3: the NAR of `path`. Reply: the NAR, with no length in front.
    pub struct DumpStorePath in Serve {
        /// The path to serialise.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 6: build paths (`drv!out` or plain paths). Reply:
    /// [`BuildPathsResult`].
    pub struct BuildPaths in Serve {
        /// Derived paths in their text form (`/nix/store/…drv!out`).
        pub paths: Vec<NixString>,
        /// How to build.
        pub options: BuildOptions,
    }
}

wire_message! {
    /// Command 7: the closure of `paths`. Reply: the closure's paths.
    pub struct QueryClosure in Serve {
        /// Also include the outputs of derivations in the closure.
        pub include_outputs: bool,
        /// The roots.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 8: build a derivation sent inline. Reply: [`BuildResult`].
    pub struct BuildDerivation in Serve {
        /// The derivation's store path (it need not exist on the server).
        pub drv_path: StorePath,
        /// The derivation, inputs already resolved to store paths.
        pub drv: BasicDerivation,
        /// How to build.
        pub options: BuildOptions,
    }
}

wire_message! {
    /// Command 9 (serve ≥ 2.5): add one path. Exactly `nar_size` bytes of NAR
    /// follow this header. Reply: [`Ack`].
    pub struct AddToStoreNar in Serve {
        /// The path being added.
        pub path: StorePath,
        /// Its deriver, if known.
        pub deriver: Option<StorePath>,
        /// The NAR's SHA-256 (sent in base 16 without a prefix).
        #[with(Base16Hash)]
        pub nar_hash: NarHash,
        /// Its references.
        pub references: Vec<StorePath>,
        /// Registration time, seconds since the epoch.
        pub registration_time: u64,
        /// The NAR's size in bytes; the body that follows has exactly this
        /// length.
        pub nar_size: u64,
        /// Whether the path was built locally (trusted).
        pub ultimate: bool,
        /// Signatures.
        pub sigs: Vec<Signature>,
        /// Content address, if any.
        pub ca: Option<ContentAddress>,
    }
}

impl AddToStoreNar {
    /// The request adding `path` with the metadata in `info`, or `None` if
    /// `info` has no NAR hash (the server needs it).
    pub fn new(path: StorePath, info: &PathInfo) -> Option<Self> {
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
        })
    }
}

wire_message! {
    /// Per-build settings sent with `BuildPaths` and `BuildDerivation`.
    #[derive(Default)]
    pub struct BuildOptions in Serve {
        /// Seconds without output before the build is killed (0: no limit).
        pub max_silent_time: u64,
        /// Seconds before the build is killed (0: no limit).
        pub build_timeout: u64,
        /// Bytes of log before the build is killed (0: no limit).
        #[since(2, 2)]
        pub max_log_size: u64 = 0,
        /// Extra rounds to check determinism; current servers reject non-zero.
        #[since(2, 3)]
        pub nr_repeats: u64 = 0,
        /// Fail if repeated rounds differ.
        #[since(2, 3)]
        pub enforce_determinism: bool = false,
        /// Keep the build directory of a failed build.
        #[since(2, 7)]
        pub keep_failed: bool = false,
    }
}

wire_layout! {
    /// One output of a derivation: its name, its path or the empty string,
    /// and the content-addressing fields, empty when unused.
    impl Wire<Serve> for DerivationOutput {
        name,
        path,
        hash_algo,
        hash,
    }
}

wire_layout! {
    /// A derivation with its inputs resolved.
    impl Wire<Serve> for BasicDerivation {
        outputs,
        input_srcs,
        platform,
        builder,
        args,
        env,
    }
}

wire_layout! {
    /// Path metadata without the path (it precedes this in [`PathInfos`]).
    /// Before 2.4 the hash, content address and signatures are not sent;
    /// registration time, `ultimate` and provenance never are.
    impl Wire<Serve> for PathInfo {
        deriver,
        references,
        download_size,
        nar_size,
        #[since(2, 4)]
        #[with(PrefixedNix32Hash)]
        nar_hash = None,
        #[since(2, 4)]
        ca = None,
        #[since(2, 4)]
        sigs = Vec::new(),
        registration_time = 0,
        ultimate = false,
        provenance = None,
    }
}

wire_layout! {
    /// A built output from protocol 2.8 on: its path and signatures, named
    /// by output name in the map around it.
    impl Wire<Serve> for Realisation {
        out_path,
        signatures,
        id = None,
    }
}

wire_layout! {
    /// A build's outcome. Timing from 2.3, the built outputs from 2.6 (JSON
    /// realisations until 2.7, structured from 2.8); CPU times never.
    impl Wire<Serve> for BuildResult {
        status,
        error_msg,
        #[since(2, 3)]
        times_built = 0,
        #[since(2, 3)]
        is_non_deterministic = false,
        #[since(2, 3)]
        start_time = 0,
        #[since(2, 3)]
        stop_time = 0,
        cpu_user = None,
        cpu_system = None,
        #[since(2, 6)]
        #[with(BuiltOutputs)]
        built_outputs = Vec::new(),
    }
}

/// Built outputs travel structured from 2.8 on (2.6 and 2.7 send JSON realisations).
impl OutputsShape for Serve {
    fn structured_outputs(cx: &Cx<Self>) -> bool {
        cx.since(2, 8)
    }
}

/// The reply to `QueryPathInfos`: (path, info) pairs for the valid paths,
/// ended by an empty string rather than preceded by a count, so it is
/// written by hand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathInfos(pub Vec<(StorePath, PathInfo)>);

/// [`PathInfos`]' progress: the entries so far, and the path and partial
/// info of the one being read.
#[derive(Debug, Default)]
pub struct PathInfosPartial {
    entries: Vec<(StorePath, PathInfo)>,
    path: Option<StorePath>,
    info: StructPartial,
}

impl Wire<Serve> for PathInfos {
    type Partial = PathInfosPartial;

    fn encode(&self, cx: &Cx<Serve>, out: &mut Vec<u8>) {
        for (path, info) in &self.0 {
            path.encode(cx, out);
            info.encode(cx, out);
        }
        encode_bytes(b"", out);
    }

    fn decode(cx: &Cx<Serve>, partial: &mut Self::Partial, r: &mut Reader<'_>) -> Decoded<Self> {
        loop {
            if partial.path.is_none() {
                match Option::<StorePath>::decode(cx, &mut (), r)? {
                    None => return Ok(None),
                    Some(None) => return Ok(Some(Self(std::mem::take(&mut partial.entries)))),
                    Some(Some(path)) => {
                        let count = partial.entries.len() as u64 + 1;
                        if count > r.limits().max_items {
                            return Err(DecodeError::new(crate::wire::DecodeErrorKind::TooLarge {
                                what: "path info count",
                                found: count,
                                limit: r.limits().max_items,
                            }));
                        }
                        partial.path = Some(path);
                    }
                }
            }
            let index = partial.entries.len();
            let Some(info) = PathInfo::decode(cx, &mut partial.info, r)
                .map_err(|e| e.within_index(index).within("PathInfos"))?
            else {
                return Ok(None);
            };
            r.charge(size_of::<(StorePath, PathInfo)>() as u64)?;
            if let Some(path) = partial.path.take() {
                partial.entries.push((path, info));
            }
            partial.info = StructPartial::default();
        }
    }
}

/// The reply to `BuildPaths`: 0, or a non-zero status followed by the error
/// message (so not a field list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildPathsResult {
    /// 0 on success, else the failure's exit status.
    pub status: u64,
    /// The error message; only sent (and only non-empty) when `status` is
    /// not 0. Bytes, as Nix's messages are.
    pub error_msg: NixString,
}

impl Wire<Serve> for BuildPathsResult {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Serve>, out: &mut Vec<u8>) {
        encode_u64(self.status, out);
        if self.status != 0 {
            encode_bytes(self.error_msg.as_bytes(), out);
        }
    }

    fn decode(_cx: &Cx<Serve>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| match r.u64() {
            None => Ok(None),
            Some(0) => Ok(Some(Self::default())),
            Some(status) => Ok(r.string()?.map(|error_msg| Self { status, error_msg })),
        })
    }
}

/// Command 4: add paths in the export format (kept for Hydra). On the wire
/// each NAR comes *before* its metadata, so the header is only the command
/// code: the client streams the NARs, each followed by its
/// [`ExportTrailer`], and a server learns the paths one by one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportPaths {
    /// One trailer per NAR the client will stream, in order.
    pub paths: Vec<ExportTrailer>,
}

impl Wire<Serve> for ImportPaths {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Serve>, _out: &mut Vec<u8>) {}

    fn decode(_cx: &Cx<Serve>, _partial: &mut (), _r: &mut Reader<'_>) -> Decoded<Self> {
        Ok(Some(Self::default()))
    }
}

wire_message! {
    /// The metadata that follows each NAR in the export format.
    pub struct ExportTrailer in Serve {
        /// Always [`EXPORT_MAGIC`].
        pub magic: ExportMagic,
        /// The path the NAR before this belongs to.
        pub path: StorePath,
        /// Its references.
        pub references: Vec<StorePath>,
        /// Its deriver, if known.
        pub deriver: Option<StorePath>,
        /// A signature in the long-gone legacy format; Nix writes none.
        pub legacy_signature: LegacySignature,
    }
}

/// The constant [`EXPORT_MAGIC`] in an [`ExportTrailer`], checked on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportMagic;

impl Wire<Serve> for ExportMagic {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Serve>, out: &mut Vec<u8>) {
        encode_u64(EXPORT_MAGIC, out);
    }

    fn decode(_cx: &Cx<Serve>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        match r.peek_u64() {
            None => Ok(None),
            Some(EXPORT_MAGIC) => {
                r.u64();
                Ok(Some(Self))
            }
            Some(other) => Err(DecodeError::unexpected(
                format!("the export magic {EXPORT_MAGIC:#x}"),
                format!("{other:#x}"),
            )),
        }
    }
}

/// A legacy export signature: a flag (0 or 1) and, when 1, the signature
/// (so not a field list). Nix reads it and writes 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacySignature(pub Option<NixString>);

impl Wire<Serve> for LegacySignature {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Serve>, out: &mut Vec<u8>) {
        match &self.0 {
            None => encode_u64(0, out),
            Some(sig) => {
                encode_u64(1, out);
                encode_bytes(sig.as_bytes(), out);
            }
        }
    }

    fn decode(cx: &Cx<Serve>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| match bool::decode(cx, &mut (), r)? {
            None => Ok(None),
            Some(false) => Ok(Some(Self(None))),
            Some(true) => Ok(r.string()?.map(|s| Self(Some(s)))),
        })
    }
}
