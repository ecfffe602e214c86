//! The worker handshake's messages and checks, shared by both ends.
//!
//! ```text
//! client                                  server
//! ClientHello (magic 1, version)    →
//!                                   ←     ServerHello (magic 2, version)
//! both speak min(client, server) from here; at 1.38 and later:
//! the client's features             →
//!                                   ←     the server's features (both keep the intersection)
//! ClientOptions (CPU affinity ≥ 1.14,
//!   reserve space ≥ 1.11: obsolete) →
//!                                   ←     HandshakeInfo (daemon version ≥ 1.33, trust ≥ 1.35)
//!                                   ←     STDERR messages of the startup, then STDERR_LAST
//! ```
//!
//! Facts from Nix's `worker-protocol-connection.cc` (`handshake`,
//! `postHandshake`) and `daemon.cc` (`processConnection`).

use crate::wire::{
    Cx, DecodeError, Decoded, NixString, Reader, VecPartial, Wire, Worker, encode_u64,
};
use crate::{wire_enum, wire_message};

/// The magic a client sends first (`WORKER_MAGIC_1`, "cxin").
pub const CLIENT_MAGIC: u64 = 0x6e69_7863;

/// The magic a server answers with (`WORKER_MAGIC_2`, "oixd").
pub const SERVER_MAGIC: u64 = 0x6478_696f;

wire_message! {
    /// The client's first message.
    pub struct ClientHello in Worker {
        /// [`CLIENT_MAGIC`].
        pub magic: u64,
        /// The client's version, `major << 8 | minor`.
        pub version: u64,
    }
}

wire_message! {
    /// The server's answer to the client's magic.
    pub struct ServerHello in Worker {
        /// [`SERVER_MAGIC`].
        pub magic: u64,
        /// The server's version, `major << 8 | minor`.
        pub version: u64,
    }
}

/// The obsolete CPU affinity a client sends from 1.14: 0 for none, or 1 and
/// the CPU. Its shape depends on its first word, so it is written by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuAffinity(pub Option<u64>);

impl Wire<Worker> for CpuAffinity {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self.0 {
            None => encode_u64(0, out),
            Some(cpu) => {
                encode_u64(1, out);
                encode_u64(cpu, out);
            }
        }
    }

    fn decode(_cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| match r.u64() {
            None => Ok(None),
            Some(0) => Ok(Some(Self(None))),
            Some(_) => Ok(r.u64().map(|cpu| Self(Some(cpu)))),
        })
    }
}

wire_message! {
    /// What the client sends after the versions (and features): two
    /// settings Nix no longer uses.
    #[derive(Default)]
    pub struct ClientOptions in Worker {
        /// The CPU the daemon should run on (ignored by every Nix since 2.0).
        #[since(1, 14)]
        pub cpu_affinity: CpuAffinity = CpuAffinity(None),
        /// Whether to reserve disk space (ignored).
        #[since(1, 11)]
        pub reserve_space: bool = false,
    }
}

wire_enum! {
    /// Whether the daemon trusts the client (sent from 1.35).
    #[derive(Default)]
    pub enum Trust ("a trust flag (0 unknown, 1 trusted, 2 not trusted)") {
        /// Not said (also the value before 1.35).
        #[default]
        Unknown = 0,
        /// The client is trusted.
        Trusted = 1,
        /// The client is not trusted.
        NotTrusted = 2,
    }
}

impl Trust {
    /// Whether the daemon trusts the client, if it said.
    pub fn trusted(self) -> Option<bool> {
        match self {
            Self::Unknown => None,
            Self::Trusted => Some(true),
            Self::NotTrusted => Some(false),
        }
    }
}

wire_message! {
    /// What the daemon says about itself after the options.
    #[derive(Default)]
    pub struct HandshakeInfo in Worker {
        /// The daemon's Nix version (`2.26.3`); empty before 1.33.
        #[since(1, 33)]
        pub daemon_version: NixString = NixString::new(),
        /// Whether it trusts the client; unknown before 1.35.
        #[since(1, 35)]
        pub trust: Trust = Trust::Unknown,
    }
}

/// A feature list's progress, kept by the connection between reads: the
/// list is as long as the peer says (up to `max_items`), so it is decoded
/// as it arrives, not again from its start on every read.
pub(crate) type FeaturesPartial = VecPartial<NixString, ()>;

/// A feature list: strings, each a feature name.
pub(crate) fn decode_features(
    cx: &Cx<Worker>,
    partial: &mut FeaturesPartial,
    r: &mut Reader<'_>,
) -> Decoded<Vec<String>> {
    let Some(names) = Vec::<NixString>::decode(cx, partial, r)? else {
        return Ok(None);
    };
    names
        .iter()
        .map(|n| {
            n.to_str().map(str::to_owned).map_err(|_| {
                DecodeError::unexpected(
                    "a feature name (text)",
                    crate::wire::show_bytes(n.as_bytes()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Appends a feature list.
pub(crate) fn encode_features(
    features: &crate::wire::Features,
    cx: &Cx<Worker>,
    out: &mut Vec<u8>,
) {
    let names: Vec<NixString> = features.iter().map(NixString::from).collect();
    names.encode(cx, out);
}
