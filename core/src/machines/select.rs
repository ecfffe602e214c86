//! Choosing a machine for a build step: a pure state machine.
//!
//! A [`Pool`] holds one [`MachineState`] per store URI. Every transition is
//! an explicit method call, and every call that depends on time takes `now`:
//!
//! - [`Pool::select`] / [`Pool::acquire`]: pick a machine for a [`Step`];
//!   `acquire` also takes one of its job slots and hands out a [`Lease`].
//! - [`Pool::release`]: give the slot back with the [`JobOutcome`]. Only a
//!   transport failure backs the machine off; a build that ran and failed
//!   says nothing about the machine's health and never disables it.
//! - [`Pool::transport_failed`] / [`Pool::handshake_succeeded`]: the backoff
//!   schedule, outside of any lease.
//! - [`Pool::reload`]: a new machines file; machines still present keep
//!   their runtime state.
//!
//! # Which machines can run a step
//!
//! In this order (the first failing check is the reported [`Rejection`]):
//! the machine is still in the machines file; it builds for the step's
//! system (`builtin` per [`BuiltinSystem`]); every mandatory feature is
//! required by the step (with Hydra's rule, a mandatory `local` is also met
//! by a `preferLocalBuild` step); every required feature is supported or
//! mandatory (Nix's rule; Hydra after 2024 compared against supported only,
//! which rejected steps requiring a machine's mandatory-only feature); it is
//! not backed off at `now`; and it has a free job slot. With
//! [`Pool::acquire_avoiding`], a machine the step already failed on is
//! also passed over while another machine could take the step.
//!
//! # Ordering of the machines that can
//!
//! [`Ordering::Nix`] (the default, Nix's build hook; fixes hydra#484):
//! 1. `current_jobs / speed_factor`, as 32-bit floats, lowest first;
//! 2. then the higher speed factor;
//! 3. then fewer current jobs;
//! 4. then the machine that comes first in the pool (file order), as Nix's
//!    hook keeps the first of equal machines.
//!
//! [`Ordering::HydraRounded`] (opt-in compatibility with Hydra's C++
//! dispatcher):
//! 1. `round(current_jobs / speed_factor)` (half away from zero), lowest
//!    first;
//! 2. then the higher speed factor;
//! 3. then **more** current jobs (Hydra packs work onto the busier machine);
//! 4. then pool order (Hydra's sort was unstable here; file order makes the
//!    result deterministic).
//!
//! A speed factor that is not finite and positive (possible only for
//! machines built by hand, never from a parsed file) is treated as 1.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::Machine;

/// What a step needs from a machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// The derivation's system, such as `x86_64-linux` or `builtin`.
    pub system: String,
    /// The derivation's `requiredSystemFeatures`.
    pub required_features: BTreeSet<String>,
    /// Hydra's `willBuildLocally`: `preferLocalBuild` is set and the
    /// coordinator could build the step itself. Only used with
    /// [`PoolConfig::local_feature_rule`].
    pub prefer_local_build: bool,
}

impl Step {
    /// A step for `system` requiring no features.
    pub fn new(system: &str) -> Self {
        Self {
            system: system.to_owned(),
            ..Self::default()
        }
    }

    /// The same step, also requiring `features`.
    pub fn with_features<I, S>(mut self, features: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_features
            .extend(features.into_iter().map(Into::into));
        self
    }
}

/// How machines that can run a step are ranked; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Nix's build hook: unrounded load per speed.
    #[default]
    Nix,
    /// Hydra's C++ dispatcher: rounded load per speed, busier machine first
    /// among equals. Sends all work to the fastest machine while its rounded
    /// load is 0 (hydra#484).
    HydraRounded,
}

/// How a step whose system is `builtin` is matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuiltinSystem {
    /// Every machine accepts it (Nix's build hook).
    #[default]
    AnyMachine,
    /// It is treated as this system (Hydra used the coordinator's own).
    As(String),
}

/// Hydra's backoff schedule after transport failures.
///
/// After the n-th consecutive failure (n capped at `max_failures`) a machine
/// is skipped for `base · factor^(n−1)` plus the caller's jitter: with the
/// defaults 60 s, 180 s, 540 s, then 1620 s for good. Failures within
/// `coalesce` of the last counted one are not counted again, so that
/// parallel steps failing together count once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Growth per further failure.
    pub factor: u32,
    /// Cap on the failure count used in the exponent.
    pub max_failures: u32,
    /// Failures closer than this to the last counted one are not counted.
    pub coalesce: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            factor: 3,
            max_failures: 4,
            coalesce: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures, before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let n = failures.clamp(1, self.max_failures.max(1));
        self.base.saturating_mul(self.factor.saturating_pow(n - 1))
    }
}

/// Settings of a [`Pool`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolConfig {
    /// How to rank machines.
    pub ordering: Ordering,
    /// How `builtin` steps are matched.
    pub builtin: BuiltinSystem,
    /// Hydra's rule that a mandatory `local` feature is met by a step with
    /// [`Step::prefer_local_build`]. Nix's hook has no such rule.
    pub local_feature_rule: bool,
    /// Backoff after transport failures.
    pub backoff: Backoff,
}

impl PoolConfig {
    /// Hydra's C++ behaviour, with `this_system` as the coordinator's system
    /// for `builtin` steps: rounded ordering and the `local` rule.
    pub fn hydra(this_system: &str) -> Self {
        Self {
            ordering: Ordering::HydraRounded,
            builtin: BuiltinSystem::As(this_system.to_owned()),
            local_feature_rule: true,
            backoff: Backoff::default(),
        }
    }
}

/// A machine and its runtime state.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineState {
    machine: Machine,
    in_file: bool,
    current_jobs: u32,
    steps_done: u64,
    consecutive_failures: u32,
    last_failure: Option<Instant>,
    disabled_until: Option<Instant>,
}

impl MachineState {
    fn new(machine: Machine) -> Self {
        Self {
            machine,
            in_file: true,
            current_jobs: 0,
            steps_done: 0,
            consecutive_failures: 0,
            last_failure: None,
            disabled_until: None,
        }
    }

    /// The machine's definition from the latest machines file.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Whether the latest machines file still lists it. Machines that were
    /// dropped are kept, unselectable, so their leases and statistics stay
    /// valid and return if they are listed again.
    pub fn in_file(&self) -> bool {
        self.in_file
    }

    /// Jobs holding a slot now.
    pub fn current_jobs(&self) -> u32 {
        self.current_jobs
    }

    /// Leases released so far, whatever their outcome.
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// Counted transport failures since the last successful handshake.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the last counted transport failure happened.
    pub fn last_failure(&self) -> Option<Instant> {
        self.last_failure
    }

    /// Until when the machine is backed off, if a failure set that.
    pub fn disabled_until(&self) -> Option<Instant> {
        self.disabled_until
    }

    /// Whether it is backed off at `now`.
    pub fn is_disabled(&self, now: Instant) -> bool {
        self.disabled_until.is_some_and(|until| now < until)
    }

    fn speed(&self) -> f32 {
        let s = self.machine.speed_factor;
        if s.is_finite() && s > 0.0 { s } else { 1.0 }
    }
}

/// Why a machine cannot run a step now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The latest machines file no longer lists it.
    Removed,
    /// It does not build for the step's system.
    System {
        /// The system it would need (after `builtin` substitution).
        wanted: String,
    },
    /// The step does not require these mandatory features of the machine.
    MandatoryNotRequired(BTreeSet<String>),
    /// The machine supports none of these required features.
    MissingFeatures(BTreeSet<String>),
    /// It is backed off after transport failures.
    Disabled {
        /// When it becomes selectable again.
        until: Instant,
        /// Counted consecutive failures.
        failures: u32,
    },
    /// The step already failed on it for the machine's sake, and another
    /// machine can take the step now or later: see
    /// [`Pool::acquire_avoiding`].
    Avoided,
    /// All its job slots are taken.
    Busy {
        /// Jobs running.
        current_jobs: u32,
        /// Its limit.
        max_jobs: u32,
    },
}

impl Rejection {
    /// Whether the rejection lasts until the machines file changes (as
    /// opposed to passing with time or finished jobs).
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            Self::Disabled { .. } | Self::Busy { .. } | Self::Avoided
        )
    }

    /// Describes the rejection; with `now`, a backoff says how long it lasts.
    pub fn describe(&self, now: Option<Instant>) -> String {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Self::Removed => "no longer in the machines file".to_owned(),
            Self::System { wanted } => format!("does not build for {wanted}"),
            Self::MandatoryNotRequired(f) => {
                format!(
                    "has mandatory feature(s) {} that the step does not require",
                    list(f)
                )
            }
            Self::MissingFeatures(f) => format!("does not support feature(s) {}", list(f)),
            Self::Disabled { until, failures } => match now {
                Some(now) => format!(
                    "backed off for {}s more after {failures} transport failure(s)",
                    until.saturating_duration_since(now).as_secs()
                ),
                None => format!("backed off after {failures} transport failure(s)"),
            },
            Self::Avoided => {
                "passed over: the step failed on it, and another machine can take it".to_owned()
            }
            Self::Busy {
                current_jobs,
                max_jobs,
            } => format!("busy ({current_jobs} of {max_jobs} jobs)"),
        }
    }
}

/// No machine can run the step now; says why for each machine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.describe())]
pub struct NoMachine {
    /// Each machine's store URI and why it was passed over, in pool order.
    pub rejections: Vec<(String, Rejection)>,
    now: Instant,
}

impl NoMachine {
    /// Whether no machine could ever run the step without a change to the
    /// machines file (Hydra marks such steps unsupported).
    pub fn is_unsupported(&self) -> bool {
        self.rejections.iter().all(|(_, r)| r.is_permanent())
    }

    fn describe(&self) -> String {
        if self.rejections.is_empty() {
            return "no machines are configured".to_owned();
        }
        let mut out = if self.is_unsupported() {
            "no machine supports this step:".to_owned()
        } else {
            "no machine can take this step now:".to_owned()
        };
        for (uri, r) in &self.rejections {
            out.push_str(&format!("\n  {uri}: {}", r.describe(Some(self.now))));
        }
        out
    }
}

/// Proof that a job slot on a machine is taken; give it back with
/// [`Pool::release`]. It cannot be copied, so a slot is released at most
/// once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a lease must be released, or its slot stays taken"]
pub struct Lease {
    uri: String,
}

impl Lease {
    /// Store URI of the machine the slot is on.
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

/// How a leased job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The build ran (whether it succeeded or failed). A failed build says
    /// nothing about the machine's health, so this never backs it off.
    Finished,
    /// The connection or protocol failed; the machine is backed off as by
    /// [`Pool::transport_failed`] with this jitter.
    TransportFailed {
        /// Extra delay chosen by the caller (Hydra: 0–29 s at random).
        jitter: Duration,
    },
}

/// A lease for a machine this pool does not know (it came from another pool).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no machine `{uri}` in this pool")]
pub struct UnknownMachine {
    /// The store URI asked for.
    pub uri: String,
}

/// Machines and their runtime state; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    config: PoolConfig,
    states: Vec<MachineState>,
}

/// Puts machines in pool order: first occurrence of each URI decides the
/// position, the last definition wins (as in Hydra's map by URI).
fn dedupe(machines: impl IntoIterator<Item = Machine>) -> Vec<Machine> {
    let mut out: Vec<Machine> = Vec::new();
    for m in machines {
        match out.iter_mut().find(|o| o.uri == m.uri) {
            Some(existing) => *existing = m,
            None => out.push(m),
        }
    }
    out
}

impl Pool {
    /// A pool of `machines`, all idle, none backed off.
    pub fn new(machines: impl IntoIterator<Item = Machine>, config: PoolConfig) -> Self {
        Self {
            config,
            states: dedupe(machines)
                .into_iter()
                .map(MachineState::new)
                .collect(),
        }
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// All machines in pool order: the latest file's order, then machines
    /// no longer in the file.
    pub fn machines(&self) -> &[MachineState] {
        &self.states
    }

    /// The state of the machine with store URI `uri`.
    pub fn get(&self, uri: &str) -> Option<&MachineState> {
        self.states.iter().find(|s| s.machine.uri == uri)
    }

    fn get_mut(&mut self, uri: &str) -> Result<&mut MachineState, UnknownMachine> {
        self.states
            .iter_mut()
            .find(|s| s.machine.uri == uri)
            .ok_or_else(|| UnknownMachine {
                uri: uri.to_owned(),
            })
    }

    /// Replaces the machine definitions with a newly read file.
    ///
    /// A machine whose store URI is still listed keeps its jobs, counters
    /// and backoff, and takes the new definition (a lowered `max_jobs` only
    /// stops new leases until enough are released). A machine no longer
    /// listed stays in the pool, unselectable, so its leases can still be
    /// released.
    pub fn reload(&mut self, machines: impl IntoIterator<Item = Machine>) {
        let mut old = std::mem::take(&mut self.states);
        for m in dedupe(machines) {
            let state = match old.iter().position(|s| s.machine.uri == m.uri) {
                Some(i) => {
                    let mut s = old.remove(i);
                    s.machine = m;
                    s.in_file = true;
                    s
                }
                None => MachineState::new(m),
            };
            self.states.push(state);
        }
        for mut s in old {
            s.in_file = false;
            self.states.push(s);
        }
    }

    fn check(&self, state: &MachineState, step: &Step, now: Instant) -> Result<(), Rejection> {
        let m = &state.machine;
        if !state.in_file {
            return Err(Rejection::Removed);
        }
        let system_ok = match (&self.config.builtin, step.system.as_str()) {
            (BuiltinSystem::AnyMachine, "builtin") => true,
            (BuiltinSystem::As(this), "builtin") => m.systems.contains(this),
            (_, system) => m.systems.contains(system),
        };
        if !system_ok {
            let wanted = match (&self.config.builtin, step.system.as_str()) {
                (BuiltinSystem::As(this), "builtin") => this.clone(),
                (_, system) => system.to_owned(),
            };
            return Err(Rejection::System { wanted });
        }
        let unmet: BTreeSet<String> = m
            .mandatory_features
            .iter()
            .filter(|f| !step.required_features.contains(*f))
            .filter(|f| {
                !(self.config.local_feature_rule && *f == "local" && step.prefer_local_build)
            })
            .cloned()
            .collect();
        if !unmet.is_empty() {
            return Err(Rejection::MandatoryNotRequired(unmet));
        }
        let missing: BTreeSet<String> = step
            .required_features
            .iter()
            .filter(|f| !m.supported_features.contains(*f) && !m.mandatory_features.contains(*f))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::MissingFeatures(missing));
        }
        if let Some(until) = state.disabled_until.filter(|u| now < *u) {
            return Err(Rejection::Disabled {
                until,
                failures: state.consecutive_failures,
            });
        }
        if state.current_jobs >= m.max_jobs {
            return Err(Rejection::Busy {
                current_jobs: state.current_jobs,
                max_jobs: m.max_jobs,
            });
        }
        Ok(())
    }

    /// Ranks two candidates; `Less` means `a` is preferred. Pool order is
    /// the caller's final tie-break.
    fn compare(&self, a: &MachineState, b: &MachineState) -> CmpOrdering {
        // u32 -> f32 may round above 2^24 jobs, which is also what Nix's
        // integer-by-float division does.
        let load = |s: &MachineState| s.current_jobs as f32 / s.speed();
        let speed_desc = |a: &MachineState, b: &MachineState| b.speed().total_cmp(&a.speed());
        match self.config.ordering {
            Ordering::Nix => load(a)
                .total_cmp(&load(b))
                .then_with(|| speed_desc(a, b))
                .then_with(|| a.current_jobs.cmp(&b.current_jobs)),
            Ordering::HydraRounded => load(a)
                .round()
                .total_cmp(&load(b).round())
                .then_with(|| speed_desc(a, b))
                .then_with(|| b.current_jobs.cmp(&a.current_jobs)),
        }
    }

    /// The machine that would run `step` at `now`, without taking a slot.
    pub fn select(&self, step: &Step, now: Instant) -> Result<&MachineState, NoMachine> {
        self.select_among(step, now, &BTreeSet::new())
    }

    /// As [`select`](Self::select), passing over the machines in `avoid`
    /// (store URIs) while any other machine could take the step, now or
    /// once a slot frees or a backoff ends; when only avoided machines can
    /// ever take it, they are used as [`select`](Self::select) would.
    ///
    /// A scheduler retrying a step after a machine failure avoids the
    /// machines it failed on: a machine that died comes back from its
    /// backoff with all its slots free and would otherwise be the first
    /// choice for the very steps it just failed, using up their tries on
    /// it while the healthy machines are busy.
    pub fn select_avoiding(
        &self,
        step: &Step,
        now: Instant,
        avoid: &BTreeSet<String>,
    ) -> Result<&MachineState, NoMachine> {
        let others_could = !avoid.is_empty()
            && self.states.iter().any(|s| {
                !avoid.contains(&s.machine.uri)
                    && self
                        .check(s, step, now)
                        .map_or_else(|r| !r.is_permanent(), |()| true)
            });
        if others_could {
            self.select_among(step, now, avoid)
        } else {
            self.select_among(step, now, &BTreeSet::new())
        }
    }

    fn select_among(
        &self,
        step: &Step,
        now: Instant,
        avoid: &BTreeSet<String>,
    ) -> Result<&MachineState, NoMachine> {
        let mut best: Option<&MachineState> = None;
        let mut rejections = Vec::new();
        for state in &self.states {
            let checked = self.check(state, step, now).and_then(|()| {
                if avoid.contains(&state.machine.uri) {
                    Err(Rejection::Avoided)
                } else {
                    Ok(())
                }
            });
            match checked {
                // Strictly better only, so the earlier of equals stays.
                Ok(()) => {
                    if best.is_none_or(|b| self.compare(state, b) == CmpOrdering::Less) {
                        best = Some(state);
                    }
                }
                Err(r) => rejections.push((state.machine.uri.clone(), r)),
            }
        }
        best.ok_or(NoMachine { rejections, now })
    }

    /// Every machine with the reason it cannot run `step` at `now`, or
    /// `Ok` if it can; in pool order.
    pub fn explain(
        &self,
        step: &Step,
        now: Instant,
    ) -> Vec<(&MachineState, Result<(), Rejection>)> {
        self.states
            .iter()
            .map(|s| (s, self.check(s, step, now)))
            .collect()
    }

    /// Selects a machine for `step` at `now` and takes one of its slots.
    pub fn acquire(&mut self, step: &Step, now: Instant) -> Result<Lease, NoMachine> {
        self.acquire_avoiding(step, now, &BTreeSet::new())
    }

    /// As [`acquire`](Self::acquire), passing over the machines in `avoid`
    /// as [`select_avoiding`](Self::select_avoiding) does.
    pub fn acquire_avoiding(
        &mut self,
        step: &Step,
        now: Instant,
        avoid: &BTreeSet<String>,
    ) -> Result<Lease, NoMachine> {
        let uri = self.select_avoiding(step, now, avoid)?.machine.uri.clone();
        // The selected machine exists and has a free slot, checked above.
        if let Ok(state) = self.get_mut(&uri) {
            state.current_jobs += 1;
        }
        Ok(Lease { uri })
    }

    /// Gives a slot back. With [`JobOutcome::TransportFailed`] the machine
    /// is also backed off.
    pub fn release(
        &mut self,
        lease: Lease,
        outcome: JobOutcome,
        now: Instant,
    ) -> Result<(), UnknownMachine> {
        let state = self.get_mut(&lease.uri)?;
        state.current_jobs = state.current_jobs.saturating_sub(1);
        state.steps_done += 1;
        if let JobOutcome::TransportFailed { jitter } = outcome {
            self.transport_failed(&lease.uri, now, jitter)?;
        }
        Ok(())
    }

    /// Records a failure to connect or talk to the machine at `now` and
    /// backs it off per [`Backoff`], plus `jitter`. Returns until when it is
    /// backed off.
    pub fn transport_failed(
        &mut self,
        uri: &str,
        now: Instant,
        jitter: Duration,
    ) -> Result<Option<Instant>, UnknownMachine> {
        let backoff = self.config.backoff;
        let state = self.get_mut(uri)?;
        let counts = state.consecutive_failures == 0
            || state
                .last_failure
                .is_none_or(|last| now.saturating_duration_since(last) > backoff.coalesce);
        if counts {
            state.consecutive_failures = state
                .consecutive_failures
                .saturating_add(1)
                .min(backoff.max_failures.max(1));
            state.last_failure = Some(now);
            let delay = backoff
                .delay(state.consecutive_failures)
                .saturating_add(jitter);
            state.disabled_until = now.checked_add(delay).or(state.disabled_until);
        }
        Ok(state.disabled_until)
    }

    /// Records a successful handshake: the failure count and backoff reset.
    pub fn handshake_succeeded(&mut self, uri: &str) -> Result<(), UnknownMachine> {
        let state = self.get_mut(uri)?;
        state.consecutive_failures = 0;
        state.disabled_until = None;
        Ok(())
    }

    /// The earliest time after `now` at which a backed-off machine becomes
    /// selectable again, for a dispatcher deciding how long to sleep.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.states
            .iter()
            .filter(|s| s.in_file)
            .filter_map(|s| s.disabled_until)
            .filter(|u| now < *u)
            .min()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(None))
    }
}
