//! One derivation built on one remote machine, as Hydra's `buildRemote`
//! does it, but as an explicit state machine the host drives.
//!
//! [`RemoteBuild`] goes through named [`Phase`]s:
//!
//! 1. **Connecting**: [`want`](RemoteBuild::want) says [`Want::Connect`];
//!    the host opens (or reuses) a connection to the machine and calls
//!    [`connected`](RemoteBuild::connected).
//! 2. **Sending inputs**: a [`ClosureCopy`] of the input closure from the
//!    local store to the machine: path infos asked of the local store a
//!    level at a time ([`Want::PathInfos`]), the machine asked once what it
//!    holds ([`Want::ValidPaths`]), the missing paths sent in one
//!    [`Want::Transfer`].
//! 3. **Building**: [`Want::Build`], the derivation as a
//!    [`BasicDerivation`] (no `.drv` file is sent, as Hydra does); the host
//!    passes the log on as it arrives and hands the [`BuildResult`] to
//!    [`built`](RemoteBuild::built).
//! 4. **Receiving outputs**: a [`ClosureCopy`] of the outputs' closure back,
//!    with the maximum output size checked before anything moves.
//! 5. **Done**, with an [`Outcome`].
//!
//! Each phase change is an [`Event`] ([`poll_event`](RemoteBuild::poll_event)),
//! stamped with the `now` the host passed in, so a host can show progress
//! and time each phase without the flow reading a clock.
//!
//! The failures are kept apart by what a scheduler must do about them
//! ([`FailureClass`]): a transport or protocol failure says the *machine*
//! is unwell (retry the build elsewhere, back the machine off); a failed
//! build says nothing about the machine (never back it off for one); an
//! input missing here is a *local* problem; a cancel is the host's own.
//! [`cancel`](RemoteBuild::cancel) works in any phase and says the
//! connection must be discarded, since a request may be half-way through
//! it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::copy::{ClosureCopy, CopyError, Transfer, Want as CopyWant};
use crate::session::BuildSettings;
use crate::store::{BasicDerivation, BuildResult, Derivation, OutputName, PathInfo, StorePath};

/// The phases of a remote build, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Opening the connection and the handshake.
    Connecting,
    /// Copying the input closure to the machine.
    SendingInputs,
    /// The build itself.
    Building,
    /// Copying the outputs' closure back.
    ReceivingOutputs,
    /// Finished, one way or another.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "connecting",
            Self::SendingInputs => "sending inputs",
            Self::Building => "building",
            Self::ReceivingOutputs => "receiving outputs",
            Self::Done => "done",
        })
    }
}

/// One end of the build: this machine's store or the builder's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The store the inputs come from and the outputs go to.
    Local,
    /// The build machine's store.
    Remote,
}

/// What the build wants the host to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    /// Open a connection to the machine (or reuse a kept one), then call
    /// [`RemoteBuild::connected`].
    Connect,
    /// The path infos of `paths` at `at`, in one batch; then
    /// [`RemoteBuild::path_infos`].
    PathInfos {
        /// Which store to ask.
        at: Side,
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// Which of `paths` the store `at` holds, in one batch; then
    /// [`RemoteBuild::valid_paths`].
    ValidPaths {
        /// Which store to ask.
        at: Side,
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// Stream these paths' NARs from `from` into the other store, in this
    /// order (each after its references), each checked against its info
    /// with a [`NarCheck`](super::copy::NarCheck); then
    /// [`RemoteBuild::transferred`].
    Transfer {
        /// The store they come from.
        from: Side,
        /// The paths and their infos.
        paths: Vec<(StorePath, PathInfo)>,
    },
    /// Build the derivation on the machine, passing its log on; then
    /// [`RemoteBuild::built`].
    Build {
        /// The `.drv` path the build is for.
        drv_path: StorePath,
        /// What to build.
        drv: Box<BasicDerivation>,
        /// Its limits.
        settings: BuildSettings,
    },
    /// Nothing: the build is done; read its [`RemoteBuild::outcome`].
    Finished,
}

/// Something the host may show or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The build entered `phase` at `at`.
    Phase {
        /// The new phase.
        phase: Phase,
        /// The `now` of the call that moved it.
        at: Instant,
    },
}

/// What a scheduler must do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The build ran and failed, or its result was refused (too large):
    /// the machine is fine, retrying elsewhere will not help.
    Build,
    /// The connection or the protocol failed: retry elsewhere and back the
    /// machine off.
    Machine,
    /// Something here is wrong (an input the local store does not have).
    Local,
    /// The host cancelled it.
    Cancelled,
}

/// Why a remote build did not produce its outputs here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The builder ran and failed; the result has its status and message.
    #[error("the build failed ({status:?}): {message}", status = .0.status, message = crate::store::lossy(.0.error_msg.as_ref()))]
    Build(Box<BuildResult>),
    /// The outputs were built but are larger than allowed, so nothing was
    /// downloaded.
    #[error("the outputs were built but not copied back: {0}")]
    OutputsRefused(CopyError),
    /// The input closure cannot be read from the local store.
    #[error("the inputs cannot be sent: {0}")]
    Inputs(CopyError),
    /// The machine answered, but not as a builder that built the outputs
    /// must (an output it does not hold, one whose path it did not say).
    #[error("the machine misbehaved while {phase}: {message}")]
    Remote {
        /// When.
        phase: Phase,
        /// What it did.
        message: String,
    },
    /// The connection or the protocol failed.
    #[error("the connection failed while {phase}: {message}")]
    Transport {
        /// When.
        phase: Phase,
        /// The host's account of it (the runtime error, with its causes).
        message: String,
    },
    /// The host answered something the build was not waiting for (a bug
    /// in the host, not the machine's fault).
    #[error("the host broke the build's turn: {0}")]
    OutOfTurn(String),
    /// Cancelled by the host.
    #[error("cancelled while {phase}")]
    Cancelled {
        /// When.
        phase: Phase,
    },
}

impl Failure {
    /// What a scheduler must do about it.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Build(_) | Self::OutputsRefused(_) => FailureClass::Build,
            Self::Remote { .. } | Self::Transport { .. } => FailureClass::Machine,
            Self::Inputs(_) | Self::OutOfTurn(_) => FailureClass::Local,
            Self::Cancelled { .. } => FailureClass::Cancelled,
        }
    }

    /// Whether the connection it happened on must be thrown away rather
    /// than kept for the next build: after a transport failure or a cancel
    /// it may be half-way through a request.
    pub fn discards_connection(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::Cancelled { .. }
                | Self::Remote { .. }
                | Self::OutOfTurn(_)
        )
    }
}

/// How a remote build ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The outputs are in the local store.
    Built {
        /// What the machine said.
        result: Box<BuildResult>,
        /// The output paths, by name.
        outputs: BTreeMap<OutputName, StorePath>,
        /// NAR bytes sent to the machine.
        sent: u64,
        /// NAR bytes received from it.
        received: u64,
    },
    /// It failed; see the class.
    Failed(Failure),
}

#[derive(Debug)]
enum Stage {
    Connect,
    Inputs(ClosureCopy),
    SendInputs(Transfer),
    Build,
    Outputs(ClosureCopy),
    ReceiveOutputs(Transfer),
    Done(Outcome),
}

/// A remote build (see the [module docs](self)).
#[derive(Debug)]
pub struct RemoteBuild {
    drv_path: StorePath,
    drv: BasicDerivation,
    settings: BuildSettings,
    max_output_size: Option<u64>,
    /// The input closure's roots: the input sources and the input
    /// derivations' outputs.
    inputs: Vec<StorePath>,
    /// The outputs, with their paths where known before the build.
    outputs: BTreeMap<OutputName, Option<StorePath>>,
    result: Option<BuildResult>,
    phase: Phase,
    stage: Stage,
    events: VecDeque<Event>,
    started: Option<Instant>,
    timings: Vec<(Phase, Duration)>,
    sent: u64,
    received: u64,
}

impl RemoteBuild {
    /// A build of `drv` (read from `drv_path`), whose input derivations'
    /// outputs are `input_outputs` (those of the wanted outputs, already in
    /// the local store). With `max_output_size`, outputs whose NARs add up
    /// to more are refused before they are downloaded (Hydra's rule).
    pub fn new(
        drv_path: StorePath,
        drv: &Derivation,
        input_outputs: Vec<StorePath>,
        settings: BuildSettings,
        max_output_size: Option<u64>,
    ) -> Self {
        let mut inputs: Vec<StorePath> = drv.input_srcs.iter().cloned().collect();
        inputs.extend(input_outputs.iter().cloned());
        inputs.sort();
        inputs.dedup();
        Self {
            drv: drv.to_basic(input_outputs),
            outputs: drv
                .outputs
                .iter()
                .map(|(name, o)| (name.clone(), o.path().cloned()))
                .collect(),
            drv_path,
            settings,
            max_output_size,
            inputs,
            result: None,
            phase: Phase::Connecting,
            stage: Stage::Connect,
            events: VecDeque::new(),
            started: None,
            timings: Vec::new(),
            sent: 0,
            received: 0,
        }
    }

    /// The derivation being built.
    pub fn drv_path(&self) -> &StorePath {
        &self.drv_path
    }

    /// The phase it is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What the host should do next.
    pub fn want(&self) -> Want {
        match &self.stage {
            Stage::Connect => Want::Connect,
            Stage::Inputs(plan) => ask(plan.want(), Side::Local, Side::Remote),
            Stage::Outputs(plan) => ask(plan.want(), Side::Remote, Side::Local),
            Stage::SendInputs(t) => Want::Transfer {
                from: Side::Local,
                paths: t.paths.clone(),
            },
            Stage::ReceiveOutputs(t) => Want::Transfer {
                from: Side::Remote,
                paths: t.paths.clone(),
            },
            Stage::Build => Want::Build {
                drv_path: self.drv_path.clone(),
                drv: Box::new(self.drv.clone()),
                settings: self.settings,
            },
            Stage::Done(_) => Want::Finished,
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How it ended, once [`Want::Finished`].
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.stage {
            Stage::Done(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// How long each phase took so far (the current one not included).
    pub fn timings(&self) -> &[(Phase, Duration)] {
        &self.timings
    }

    /// The connection is open and the handshake done.
    pub fn connected(&mut self, now: Instant) {
        if !matches!(self.stage, Stage::Connect) {
            return self.out_of_turn(now, "a connection");
        }
        self.started.get_or_insert(now);
        self.enter(now, Phase::SendingInputs);
        self.stage = Stage::Inputs(ClosureCopy::new(self.inputs.clone(), None));
        self.skip_empty(now);
    }

    /// The answer to [`Want::PathInfos`].
    pub fn path_infos(&mut self, now: Instant, infos: Vec<(StorePath, PathInfo)>) {
        let answered = match &mut self.stage {
            Stage::Inputs(plan) => plan.source_answered(infos).map_err(Failure::Inputs),
            Stage::Outputs(plan) => plan.source_answered(infos).map_err(|e| match e {
                CopyError::MissingAtSource { path } => Failure::Remote {
                    phase: Phase::ReceivingOutputs,
                    message: format!("the build succeeded, but the machine does not hold {path}"),
                },
                other => Failure::OutputsRefused(other),
            }),
            _ => return self.out_of_turn(now, "path infos"),
        };
        match answered {
            Ok(()) => self.skip_empty(now),
            Err(failure) => self.finish(now, Outcome::Failed(failure)),
        }
    }

    /// The answer to [`Want::ValidPaths`].
    pub fn valid_paths(&mut self, now: Instant, valid: Vec<StorePath>) {
        let (transfer, inputs) = match &mut self.stage {
            Stage::Inputs(plan) => (plan.destination_answered(valid), true),
            Stage::Outputs(plan) => (plan.destination_answered(valid), false),
            _ => return self.out_of_turn(now, "valid paths"),
        };
        match transfer {
            Ok(t) if inputs => self.stage = Stage::SendInputs(t),
            Ok(t) => self.stage = Stage::ReceiveOutputs(t),
            Err(e) if inputs => return self.finish(now, Outcome::Failed(Failure::Inputs(e))),
            Err(e) => return self.finish(now, Outcome::Failed(Failure::OutputsRefused(e))),
        }
        self.skip_empty(now);
    }

    /// The [`Want::Transfer`] is done: every NAR arrived and matched.
    pub fn transferred(&mut self, now: Instant) {
        match std::mem::replace(&mut self.stage, Stage::Build) {
            Stage::SendInputs(t) => {
                self.sent += t.nar_size;
                self.enter(now, Phase::Building);
            }
            Stage::ReceiveOutputs(t) => {
                self.received += t.nar_size;
                self.finish_built(now);
            }
            other => {
                self.stage = other;
                self.out_of_turn(now, "a finished transfer");
            }
        }
    }

    /// The answer to [`Want::Build`].
    pub fn built(&mut self, now: Instant, result: BuildResult) {
        if !matches!(self.stage, Stage::Build) {
            return self.out_of_turn(now, "a build result");
        }
        if !result.status.is_success() {
            return self.finish(now, Outcome::Failed(Failure::Build(Box::new(result))));
        }
        // Outputs whose path only the build decides (content-addressed
        // ones) take it from the result.
        for (name, path) in &mut self.outputs {
            if path.is_none() {
                *path = result
                    .built_outputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, r)| r.out_path.clone());
            }
        }
        if let Some((name, _)) = self.outputs.iter().find(|(_, p)| p.is_none()) {
            let message = format!("the build succeeded, but did not say where output {name} is");
            return self.finish(
                now,
                Outcome::Failed(Failure::Remote {
                    phase: Phase::Building,
                    message,
                }),
            );
        }
        self.result = Some(result);
        self.enter(now, Phase::ReceivingOutputs);
        let outputs = self.outputs.values().flatten().cloned();
        self.stage = Stage::Outputs(ClosureCopy::new(outputs, self.max_output_size));
        self.skip_empty(now);
    }

    /// The host's request failed: the connection, the protocol, a NAR that
    /// did not match. `message` is its account (with the causes).
    pub fn failed(&mut self, now: Instant, message: impl Into<String>) {
        if matches!(self.stage, Stage::Done(_)) {
            return;
        }
        let failure = Failure::Transport {
            phase: self.phase,
            message: message.into(),
        };
        self.finish(now, Outcome::Failed(failure));
    }

    /// Cancels it, in any phase; the connection must be discarded.
    pub fn cancel(&mut self, now: Instant) {
        if matches!(self.stage, Stage::Done(_)) {
            return;
        }
        let phase = self.phase;
        self.finish(now, Outcome::Failed(Failure::Cancelled { phase }));
    }

    /// Moves past a question about nothing and a copy with nothing to send,
    /// so that the host makes no empty round trip.
    fn skip_empty(&mut self, now: Instant) {
        if let Want::ValidPaths { paths, .. } = self.want()
            && paths.is_empty()
        {
            return self.valid_paths(now, Vec::new());
        }
        match &self.stage {
            Stage::SendInputs(t) | Stage::ReceiveOutputs(t) if t.paths.is_empty() => {
                self.transferred(now)
            }
            _ => {}
        }
    }

    fn finish_built(&mut self, now: Instant) {
        let result = self
            .result
            .take()
            .unwrap_or_else(|| BuildResult::new(crate::store::BuildStatus::Built, ""));
        let outputs = std::mem::take(&mut self.outputs)
            .into_iter()
            .filter_map(|(name, path)| path.map(|p| (name, p)))
            .collect();
        let outcome = Outcome::Built {
            result: Box::new(result),
            outputs,
            sent: self.sent,
            received: self.received,
        };
        self.finish(now, outcome);
    }

    fn out_of_turn(&mut self, now: Instant, came: &str) {
        let message = format!("it gave {came} while the build was {}", self.phase);
        self.finish(now, Outcome::Failed(Failure::OutOfTurn(message)));
    }

    fn enter(&mut self, now: Instant, phase: Phase) {
        if let Some(start) = self.started {
            self.timings
                .push((self.phase, now.saturating_duration_since(start)));
        }
        self.started = Some(now);
        self.phase = phase;
        self.events.push_back(Event::Phase { phase, at: now });
    }

    fn finish(&mut self, now: Instant, outcome: Outcome) {
        self.stage = Stage::Done(outcome);
        self.enter(now, Phase::Done);
    }
}

/// A copy plan's question as the build's, with the copy's source and
/// destination.
fn ask(want: CopyWant, source: Side, dest: Side) -> Want {
    match want {
        CopyWant::AskSource(paths) => Want::PathInfos { at: source, paths },
        CopyWant::AskDestination(paths) => Want::ValidPaths { at: dest, paths },
        // A copy plan only finishes by giving its transfer, which moves
        // the build on; this is not reached.
        CopyWant::Finished => Want::Finished,
    }
}
