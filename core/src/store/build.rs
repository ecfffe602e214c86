//! The outcome of a build, as both protocols report it.

use super::{OutputName, Realisation};
use crate::wire::NixString;

crate::wire_enum! {
    /// What happened to a build. The same codes in both protocols; Nix adds
    /// statuses now and then, hence `non_exhaustive`.
    #[non_exhaustive]
    pub enum BuildStatus ("a build status") {
        /// Built now.
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

/// The outcome of one build: one type for both protocols, each of which
/// carries a different subset of it (see their layouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// What happened.
    pub status: BuildStatus,
    /// The error message of a failure, empty on success. Bytes: Nix copies
    /// the tail of the builder's log into it.
    pub error_msg: NixString,
    /// How many times it was built (0 where the protocol does not say).
    pub times_built: u64,
    /// Whether repeated builds differed.
    pub is_non_deterministic: bool,
    /// Start of the build, seconds since the epoch (0: unknown).
    pub start_time: u64,
    /// End of the build, seconds since the epoch (0: unknown).
    pub stop_time: u64,
    /// User CPU time of the build in microseconds, where reported.
    pub cpu_user: Option<u64>,
    /// System CPU time of the build in microseconds, where reported.
    pub cpu_system: Option<u64>,
    /// The outputs built, by output name.
    pub built_outputs: Vec<(OutputName, Realisation)>,
}

impl BuildResult {
    /// A result with `status` and `error_msg` and nothing else known.
    pub fn new(status: BuildStatus, error_msg: impl Into<NixString>) -> Self {
        Self {
            status,
            error_msg: error_msg.into(),
            times_built: 0,
            is_non_deterministic: false,
            start_time: 0,
            stop_time: 0,
            cpu_user: None,
            cpu_system: None,
            built_outputs: Vec::new(),
        }
    }
}
