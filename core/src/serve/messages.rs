//! Every message of the serve protocol, declared once.
//!
//! Each struct below is one [`wire_message!`](crate::wire_message) declaration: its
//! fields in wire order, with `#[since(2, N)]` beside a field that protocol 2.N
//! introduced. Encoding and decoding are both generated from it. The few types
//! with a shape a field list cannot express (a list ended by an empty string, a
//! constant magic, a field whose type changed between versions) implement
//! [`Wire`] by hand here, each next to the comment that says why.
//!
//! Facts are from Nix's `serve-protocol.cc`, `serve-protocol-connection.cc`,
//! `derivation/aterm.cc`, `export-import.cc` and `nix-store --serve`.

use crate::wire::{Cx, DecodeError, Version, Wire, WireResult, decode_u64, encode_u64, too_large};
use crate::{wire_enum, wire_message};

/// The serve protocol's major version.
pub const MAJOR: u8 = 2;

/// The newest serve protocol version this crate speaks (Nix 2.34's).
pub const LATEST: Version = Version::new(2, 8);

/// The magic a client sends first (`SERVE_MAGIC_1`).
pub const CLIENT_MAGIC: u64 = 0x390c_9deb;

/// The magic a server answers with (`SERVE_MAGIC_2`).
pub const SERVER_MAGIC: u64 = 0x5452_eecb;

/// The magic in front of each path's metadata in the export format
/// (`ImportPaths`): "NIXE" in little-endian.
pub const EXPORT_MAGIC: u64 = 0x4558_494e;

/// A store path as it travels: its full printed form (`/nix/store/<hash>-<name>`).
pub type StorePath = String;

wire_enum! {
    /// The command code at the start of every request. Code 5 (ExportPaths) was
    /// removed from Nix and is rejected.
    pub enum Command ("a serve command") {
        /// Which of these paths are valid on the server.
        QueryValidPaths = 1,
        /// Metadata of these paths.
        QueryPathInfos = 2,
        /// The NAR of one path.
        DumpStorePath = 3,
        /// Add paths in the export format (kept for Hydra).
        ImportPaths = 4,
        /// Build derivations or outputs named by path.
        BuildPaths = 6,
        /// The closure of these paths.
        QueryClosure = 7,
        /// Build a derivation sent in its wire form.
        BuildDerivation = 8,
        /// Add one path with its metadata and NAR (serve ≥ 2.5).
        AddToStoreNar = 9,
    }
}

wire_enum! {
    /// The outcome of a build, as `BuildResult::status` carries it.
    #[derive(Default)]
    pub enum BuildStatus ("a build status") {
        /// Built now.
        #[default]
        Built = 0,
        /// Fetched from a substituter.
        Substituted = 1,
        /// Already valid; nothing done.
        AlreadyValid = 2,
        /// The builder failed; retrying will not help.
        PermanentFailure = 3,
        /// An input was rejected.
        InputRejected = 4,
        /// An output was rejected (also sent for a hash mismatch).
        OutputRejected = 5,
        /// A failure that may go away on retry.
        TransientFailure = 6,
        /// A cached earlier failure.
        CachedFailure = 7,
        /// The build timed out.
        TimedOut = 8,
        /// Any other failure.
        MiscFailure = 9,
        /// A dependency failed.
        DependencyFailed = 10,
        /// The log exceeded `maxLogSize`.
        LogLimitExceeded = 11,
        /// Repeated builds differed.
        NotDeterministic = 12,
        /// The resolved derivation's outputs were already valid.
        ResolvesToAlreadyValid = 13,
        /// No substituter could provide the path.
        NoSubstituters = 14,
    }
}

impl BuildStatus {
    /// Whether the status means the outputs exist now.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Self::Built | Self::Substituted | Self::AlreadyValid | Self::ResolvesToAlreadyValid
        )
    }
}

wire_message! {
    /// Command 1: which of `paths` are valid. With `lock`, a server running
    /// `--write` adds temporary GC roots for them; with `substitute` it first
    /// tries to substitute the missing ones. Reply: the valid paths.
    pub struct QueryValidPaths {
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
    pub struct QueryPathInfos {
        /// The paths asked about; invalid ones are left out of the reply.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 3: the NAR of `path`. Reply: the NAR, with no length prefix.
    pub struct DumpStorePath {
        /// The path to serialise.
        pub path: StorePath,
    }
}

wire_message! {
    /// Command 6: build paths (`drv!out` or plain paths). Reply: [`BuildPathsResult`].
    pub struct BuildPaths {
        /// Derived paths in their string form.
        pub paths: Vec<String>,
        /// How to build.
        pub options: BuildOptions,
    }
}

wire_message! {
    /// Command 7: the closure of `paths`. Reply: the closure's paths.
    pub struct QueryClosure {
        /// Also include the outputs of derivations in the closure.
        pub include_outputs: bool,
        /// The roots.
        pub paths: Vec<StorePath>,
    }
}

wire_message! {
    /// Command 8: build a derivation sent inline. Reply: [`BuildResult`].
    pub struct BuildDerivation {
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
    pub struct AddToStoreNar {
        /// The path being added.
        pub path: StorePath,
        /// Its deriver, or empty.
        pub deriver: String,
        /// The NAR's SHA-256, in base 16 without a prefix.
        pub nar_hash: String,
        /// Its references.
        pub references: Vec<StorePath>,
        /// Registration time, seconds since the epoch.
        pub registration_time: u64,
        /// The NAR's size in bytes; the body that follows has exactly this length.
        pub nar_size: u64,
        /// Whether the path was built locally (trusted).
        pub ultimate: bool,
        /// Signatures.
        pub sigs: Vec<String>,
        /// Content address, or empty.
        pub ca: String,
    }
}

wire_message! {
    /// Per-build settings sent with `BuildPaths` and `BuildDerivation`.
    pub struct BuildOptions {
        /// Seconds without output before the build is killed (0: no limit).
        pub max_silent_time: u64,
        /// Seconds before the build is killed (0: no limit).
        pub build_timeout: u64,
        /// Bytes of log before the build is killed (0: no limit).
        #[since(2, 2)]
        pub max_log_size: u64,
        /// Extra rounds to check determinism; current servers reject non-zero.
        #[since(2, 3)]
        pub nr_repeats: u64,
        /// Fail if repeated rounds differ.
        #[since(2, 3)]
        pub enforce_determinism: bool,
        /// Keep the build directory of a failed build.
        #[since(2, 7)]
        pub keep_failed: bool,
    }
}

wire_message! {
    /// One output of a [`BasicDerivation`]. Input-addressed outputs have only a
    /// path; content-addressed ones carry `hash_algo` (`r:sha256`, ...) and
    /// possibly `hash`.
    pub struct DerivationOutput {
        /// The output name (`out`, `dev`, ...).
        pub name: String,
        /// The output path, or empty when not yet known.
        pub path: String,
        /// Hashing method and algorithm for content-addressed outputs, or empty.
        pub hash_algo: String,
        /// The expected hash in base 16 for fixed outputs, `impure`, or empty.
        pub hash: String,
    }
}

wire_message! {
    /// A derivation without its input derivations, as the serve protocol sends
    /// it: the inputs are already resolved into `input_srcs`.
    pub struct BasicDerivation {
        /// Its outputs, in the order sent (sorted by name in Nix).
        pub outputs: Vec<DerivationOutput>,
        /// Input store paths.
        pub input_srcs: Vec<StorePath>,
        /// The system it builds on (`x86_64-linux`).
        pub platform: String,
        /// The builder executable.
        pub builder: String,
        /// The builder's arguments.
        pub args: Vec<String>,
        /// The environment, as (name, value) pairs.
        pub env: Vec<(String, String)>,
    }
}

wire_message! {
    /// Metadata of a valid path, without the path itself (it precedes this in
    /// a [`PathInfos`] reply).
    pub struct UnkeyedValidPathInfo {
        /// The deriver, or empty.
        pub deriver: String,
        /// References.
        pub references: Vec<StorePath>,
        /// Unused by Nix; servers send the NAR size again.
        pub download_size: u64,
        /// The NAR's size.
        pub nar_size: u64,
        /// The NAR hash (`sha256:<nix32>`), or empty from very old servers.
        #[since(2, 4)]
        pub nar_hash: String,
        /// Content address, or empty.
        #[since(2, 4)]
        pub ca: String,
        /// Signatures.
        #[since(2, 4)]
        pub sigs: Vec<String>,
    }
}

wire_message! {
    /// What protocol 2.8 says about one built output: its path and signatures.
    pub struct Realisation {
        /// The output path.
        pub out_path: StorePath,
        /// Signatures of the realisation.
        pub signatures: Vec<String>,
    }
}

wire_message! {
    /// The reply to `BuildDerivation`.
    pub struct BuildResult {
        /// What happened.
        pub status: BuildStatus,
        /// The error message of a failure, empty on success.
        pub error_msg: String,
        /// How many times it was built.
        #[since(2, 3)]
        pub times_built: u64,
        /// Whether repeated builds differed.
        #[since(2, 3)]
        pub is_non_deterministic: bool,
        /// Start of the build, seconds since the epoch (0: unknown).
        #[since(2, 3)]
        pub start_time: u64,
        /// End of the build, seconds since the epoch (0: unknown).
        #[since(2, 3)]
        pub stop_time: u64,
        /// The outputs built; their encoding changed in 2.8.
        #[since(2, 6)]
        pub built_outputs: BuiltOutputs,
    }
}

wire_message! {
    /// The metadata that follows each NAR in the export format (`ImportPaths`).
    pub struct ExportTrailer {
        /// Always [`EXPORT_MAGIC`].
        pub magic: ExportMagic,
        /// The path the NAR before this belongs to.
        pub path: StorePath,
        /// Its references.
        pub references: Vec<StorePath>,
        /// Its deriver, or empty.
        pub deriver: String,
        /// A signature in the long-gone legacy format; Nix writes none.
        pub legacy_signature: LegacySignature,
    }
}

/// The constant [`EXPORT_MAGIC`] in an [`ExportTrailer`], checked on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportMagic;

impl Wire for ExportMagic {
    fn encode(&self, _cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(EXPORT_MAGIC, out);
    }

    fn decode<'a>(_cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, magic) = decode_u64(input)?;
        if magic == EXPORT_MAGIC {
            Ok((rest, Self))
        } else {
            Err(nom::Err::Failure(DecodeError::unexpected(
                format!("the export magic {EXPORT_MAGIC:#x}"),
                format!("{magic:#x}"),
            )))
        }
    }
}

/// A legacy export signature: a flag (0 or 1) and, when 1, the signature.
/// Nix reads it and writes 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacySignature(pub Option<String>);

impl Wire for LegacySignature {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        match &self.0 {
            None => encode_u64(0, out),
            Some(sig) => {
                encode_u64(1, out);
                sig.encode(cx, out);
            }
        }
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, present) = bool::decode(cx, input)?;
        if !present {
            return Ok((rest, Self(None)));
        }
        let (rest, sig) = String::decode(cx, rest)?;
        Ok((rest, Self(Some(sig))))
    }
}

/// `BuildResult::built_outputs`, whose type changed with the version: 2.6 and
/// 2.7 send a map from `<drv hash>!<output>` to a JSON realisation (kept here
/// as the exact text, so re-encoding gives the same bytes); 2.8 sends a map
/// from output name to [`Realisation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltOutputs {
    /// The 2.6–2.7 form: (`<hash>!<output>`, JSON text) pairs.
    Json(Vec<(String, String)>),
    /// The 2.8 form: (output name, realisation) pairs.
    Structured(Vec<(String, Realisation)>),
}

impl Default for BuiltOutputs {
    fn default() -> Self {
        Self::Json(Vec::new())
    }
}

/// The store directory nearly every Nix uses, for the one place the wire
/// carries a path without it (the JSON realisations of 2.6 and 2.7).
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

impl BuiltOutputs {
    /// The outputs as (output name, full output path) pairs, whichever the
    /// encoding. JSON realisations name the output by its base name, which is
    /// joined to `store_dir`. An entry that cannot be read is an error.
    pub fn paths(&self, store_dir: &str) -> Result<Vec<(String, StorePath)>, DecodeError> {
        match self {
            Self::Structured(entries) => Ok(entries
                .iter()
                .map(|(name, r)| (name.clone(), r.out_path.clone()))
                .collect()),
            Self::Json(entries) => entries
                .iter()
                .map(|(id, json)| {
                    let name = id.split_once('!').map(|(_, n)| n).ok_or_else(|| {
                        DecodeError::unexpected("an output id \"<hash>!<output>\"", id.clone())
                    })?;
                    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                        DecodeError::unexpected("a JSON realisation", format!("{json:?} ({e})"))
                    })?;
                    let base = value
                        .get("outPath")
                        .and_then(|p| p.as_str())
                        .ok_or_else(|| {
                            DecodeError::unexpected("a realisation with \"outPath\"", json.clone())
                        })?;
                    Ok((name.to_owned(), format!("{store_dir}/{base}")))
                })
                .collect(),
        }
    }

    /// Converts to the form `version` sends, with paths in `store_dir`. Going
    /// to JSON writes what Nix writes for old clients (a dummy derivation hash
    /// in the id, the path's base name); entries whose JSON cannot be read
    /// cannot be carried to 2.8 and are dropped.
    pub fn for_version(&self, version: Version, store_dir: &str) -> Self {
        let structured = version >= Version::new(2, 8);
        match (self, structured) {
            (Self::Structured(_), true) | (Self::Json(_), false) => self.clone(),
            (Self::Json(entries), true) => Self::Structured(
                entries
                    .iter()
                    .filter_map(|e| Self::Json(vec![e.clone()]).paths(store_dir).ok())
                    .flatten()
                    .map(|(name, out_path)| {
                        let signatures = Vec::new();
                        (
                            name,
                            Realisation {
                                out_path,
                                signatures,
                            },
                        )
                    })
                    .collect(),
            ),
            (Self::Structured(entries), false) => Self::Json(
                entries
                    .iter()
                    .map(|(name, r)| {
                        let id = format!("sha256:{}!{name}", "0".repeat(64));
                        let base = r.out_path.rsplit('/').next().unwrap_or_default();
                        let json = serde_json::json!({ "id": id, "outPath": base });
                        (id, json.to_string())
                    })
                    .collect(),
            ),
        }
    }
}

/// A reply handed over in the other version's form is converted on the way
/// out, assuming [`DEFAULT_STORE_DIR`]; a host with another store directory
/// converts with [`BuiltOutputs::for_version`] itself.
impl Wire for BuiltOutputs {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        match self.for_version(cx.version, DEFAULT_STORE_DIR) {
            Self::Json(entries) => entries.encode(cx, out),
            Self::Structured(entries) => entries.encode(cx, out),
        }
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        if cx.version >= Version::new(2, 8) {
            let (rest, entries) = Vec::decode(cx, input)?;
            Ok((rest, Self::Structured(entries)))
        } else {
            let (rest, entries) = Vec::decode(cx, input)?;
            Ok((rest, Self::Json(entries)))
        }
    }
}

/// The reply to `QueryPathInfos`: (path, info) pairs for the valid paths, ended
/// by an empty string rather than preceded by a count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathInfos(pub Vec<(StorePath, UnkeyedValidPathInfo)>);

impl Wire for PathInfos {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        for (path, info) in &self.0 {
            path.encode(cx, out);
            info.encode(cx, out);
        }
        String::new().encode(cx, out);
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let mut entries = Vec::new();
        let mut rest = input;
        loop {
            let (r, path) = String::decode(cx, rest)?;
            rest = r;
            if path.is_empty() {
                return Ok((rest, Self(entries)));
            }
            if entries.len() as u64 >= cx.limits.max_items {
                let found = entries.len() as u64 + 1;
                return Err(too_large("path info count", found, cx.limits.max_items));
            }
            let (r, info) = UnkeyedValidPathInfo::decode(cx, rest)
                .map_err(|e| e.map(|e| e.within("PathInfos")))?;
            rest = r;
            entries.push((path, info));
        }
    }
}

/// The reply to `BuildPaths`: 0, or a non-zero status followed by the error
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildPathsResult {
    /// 0 on success, else the failure's exit status.
    pub status: u64,
    /// The error message; only sent (and only non-empty) when `status` is not 0.
    pub error_msg: String,
}

impl Wire for BuildPathsResult {
    fn encode(&self, cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(self.status, out);
        if self.status != 0 {
            self.error_msg.encode(cx, out);
        }
    }

    fn decode<'a>(cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, status) = decode_u64(input)?;
        if status == 0 {
            return Ok((rest, Self::default()));
        }
        let (rest, error_msg) = String::decode(cx, rest)?;
        Ok((rest, Self { status, error_msg }))
    }
}

/// The acknowledgement `1` that ends `ImportPaths` and `AddToStoreNar`.
/// Anything else means the server failed to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack;

impl Wire for Ack {
    fn encode(&self, _cx: &Cx, out: &mut Vec<u8>) {
        encode_u64(1, out);
    }

    fn decode<'a>(_cx: &Cx, input: &'a [u8]) -> WireResult<'a, Self> {
        let (rest, ack) = decode_u64(input)?;
        if ack == 1 {
            Ok((rest, Self))
        } else {
            Err(nom::Err::Failure(DecodeError::unexpected(
                "the acknowledgement 1 (the server imported the paths)",
                ack.to_string(),
            )))
        }
    }
}
