//! The worker protocol (`nix-daemon`, `nix-daemon --stdio`, the transport
//! of `unix://` and `ssh-ng://` stores).
//!
//! After the handshake (magics [`WORKER_MAGIC_1`] and [`WORKER_MAGIC_2`],
//! versions, from 1.38 the feature sets), the client sends operations one
//! at a time: a command code and the request's fields, sometimes followed
//! by a body (framed, or pulled by the daemon). The daemon answers with a
//! log stream (`STDERR_*` messages) ended by `STDERR_LAST` or an error,
//! and then the reply's fields. How each field travels depends on the
//! negotiated version and features, both of which live in the
//! [`Cx`](crate::wire::Cx) every layout is used with.
//!
//! - [`messages`]: the requests and replies, and this protocol's layouts of
//!   the shared store types.
//! - The operation table (`ops.rs`, re-exported here): one row per
//!   operation, from which [`Command`], [`Request`], [`Reply`], the typed
//!   [`Op`] and [`body_at`] come.
//! - [`features`]: the names of the features peers agree on at 1.38, and
//!   what each changes.

pub mod messages;
mod ops;

pub use ops::*;

use crate::wire::Version;

/// The magic a client sends first.
pub const WORKER_MAGIC_1: u64 = 0x6e69_7863;

/// The magic a daemon answers with.
pub const WORKER_MAGIC_2: u64 = 0x6478_696f;

/// The newest worker protocol version this crate speaks. (Nix's
/// `PROTOCOL_VERSION` macro says 1.39, but every Nix up to 2.35 negotiates
/// 1.38 and adds features instead.)
pub const LATEST: Version = Version::new(1, 38);

/// The oldest worker protocol version this crate speaks: Nix 2.3's.
pub const MINIMUM: Version = Version::new(1, 21);

/// The features peers may agree on in the 1.38 handshake (each side sends
/// its set; both use the intersection), and what each changes on the wire.
/// Features are not ordered; a field or an operation gated by one exists
/// only when both sides named it.
pub mod features {
    /// Upstream Nix (2.35+). Derivation outputs are named by the
    /// derivation's store path and the output name instead of
    /// `<drv hash>!<output>`: `DrvOutput` becomes two strings,
    /// `BuildResult`'s built outputs a map from output name to unkeyed
    /// realisation (instead of JSON), `RegisterDrvOutput` structured fields,
    /// and `QueryRealisation`'s reply an optional unkeyed realisation.
    /// Without it, newer Nix refuses `QueryRealisation` and
    /// `RegisterDrvOutput`.
    pub const REALISATION_WITH_PATH_NOT_HASH: &str = "realisation-with-path-not-hash";

    /// Upstream Nix (2.35+). `CollectGarbage` takes the paths to delete as
    /// a tag: "the whole store", or "these paths, and whether to delete
    /// their referrers" (without it, a set of paths, empty for the whole
    /// store).
    pub const DELETE_DEAD_SPECIFIC_REFERRERS: &str = "delete-dead-specific-referrers";

    /// Upstream Nix, inside builds with `builder-rpc-v0` or recursive Nix:
    /// the client sends no `SetOptions`.
    pub const DISABLE_SET_OPTIONS: &str = "disable-set-options";

    /// Upstream Nix, inside builds: operation 1001 (`AddToStoreScanning`)
    /// exists.
    pub const ADD_TO_STORE_SCANNING: &str = "add-to-store-scanning";

    /// Upstream Nix, inside builds with `builder-rpc-v0`: operation 1000
    /// (`SubmitOutput`) exists.
    pub const SUBMIT_OUTPUT: &str = "submit-output";

    /// Determinate Nix: operation 48 (`QueryActiveBuilds`) exists.
    pub const QUERY_ACTIVE_BUILDS: &str = "queryActiveBuilds";

    /// Determinate Nix, offered only with its experimental `provenance`
    /// feature on: every `UnkeyedValidPathInfo` ends with a JSON string
    /// (empty for none), and so do `AddToStoreNar`'s header (after the
    /// content address) and `AddToStore`'s 1.25 header (after `repair`).
    pub const PROVENANCE: &str = "provenance";

    /// Determinate Nix: the path infos inside `AddMultipleToStore`'s body
    /// are encoded at the negotiated version and features instead of at
    /// 1.16 (so with `provenance`, they carry it).
    pub const VERSIONED_ADD_TO_STORE_MULTIPLE: &str = "versionedAddToStoreMultiple";

    /// Determinate Nix: operation 49 (`AddTempRoots`) exists.
    pub const ADD_TEMP_ROOTS: &str = "addTempRoots";

    /// Determinate Nix: operation 50 (`QueryPathInfos`) exists.
    pub const QUERY_PATH_INFOS: &str = "queryPathInfos";

    /// Every feature named here.
    pub const ALL: &[&str] = &[
        REALISATION_WITH_PATH_NOT_HASH,
        DELETE_DEAD_SPECIFIC_REFERRERS,
        DISABLE_SET_OPTIONS,
        ADD_TO_STORE_SCANNING,
        SUBMIT_OUTPUT,
        QUERY_ACTIVE_BUILDS,
        PROVENANCE,
        VERSIONED_ADD_TO_STORE_MULTIPLE,
        ADD_TEMP_ROOTS,
        QUERY_PATH_INFOS,
    ];
}
