//! A derivation's closure of builds across a pool of machines, as
//! `nix-build -j0 --builders` schedules it, as an explicit state machine.
//!
//! [`Schedule`] is driven by the host in two stages:
//!
//! 1. **Finding what to build**, a level of the derivation graph at a time:
//!    [`want`](Schedule::want) says [`Want::ReadDerivations`] (the host
//!    reads and parses those `.drv` files and hands them to
//!    [`derivations_read`](Schedule::derivations_read)), then
//!    [`Want::ValidOutputs`] (the host asks the local store, in one batch,
//!    which of their outputs it holds, and calls
//!    [`outputs_valid`](Schedule::outputs_valid)). A derivation whose
//!    outputs are all there needs no build, and its inputs are not read;
//!    the input derivations of the others are the next level.
//! 2. **Building**: [`poll_job`](Schedule::poll_job) hands out a [`Job`] for
//!    each derivation whose input derivations are all built, on a machine
//!    the [`Pool`] selects for its system and features (a slot taken);
//!    the host runs it as a [`RemoteBuild`](super::build::RemoteBuild) on
//!    a connection it keeps for that machine, and reports with
//!    [`job_finished`](Schedule::job_finished). [`Next::Wait`] says nothing
//!    can start until a job finishes or a backed-off machine comes back;
//!    [`Next::Done`] that every wanted derivation is settled.
//!
//! What a failure does follows its [class](super::build::FailureClass): a
//! failed build fails its derivation and every derivation that needs it
//! (and, unless [`keep_going`](Schedule::keep_going), stops new builds, as
//! Nix does); a machine failure backs the machine off and puts the build
//! back at the head of the queue, tried up to
//! [`max_tries`](Schedule::max_tries) times, on another machine while one
//! can take it (the failed machine comes back from its backoff with its
//! slots free, and would be chosen first); a cancel stops everything.
//!
//! Outputs whose path only the build decides (floating content-addressed
//! derivations) cannot be checked in advance: such a derivation is always
//! built.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Instant;

use super::build::{Failure, FailureClass, Outcome};
use crate::machines::Machine;
use crate::machines::select::{JobOutcome, Lease, NoMachine, Pool, Step};
use crate::store::{Derivation, OutputName, StoreDir, StorePath};

/// A build handed out by [`Schedule::poll_job`].
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its number, for [`Schedule::job_finished`].
    pub id: JobId,
    /// The derivation to build.
    pub drv_path: StorePath,
    /// What the `.drv` file says.
    pub drv: Derivation,
    /// The outputs of its input derivations it needs (all in the local
    /// store), for [`RemoteBuild::new`](super::build::RemoteBuild::new).
    pub input_outputs: Vec<StorePath>,
    /// The machine chosen for it (a slot is taken until it finishes).
    pub machine: Machine,
    /// How many times it was tried before (after machine failures).
    pub retries: u32,
}

/// A job's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// What the schedule wants before it can hand out builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Read these `.drv` files and hand them to
    /// [`Schedule::derivations_read`].
    ReadDerivations(Vec<StorePath>),
    /// Ask the local store which of these outputs it holds (one batch),
    /// and hand the answer to [`Schedule::outputs_valid`].
    ValidOutputs(Vec<StorePath>),
    /// Nothing more to learn: call [`Schedule::poll_job`].
    Build,
}

/// What [`Schedule::poll_job`] says.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Start this build.
    Run(Box<Job>),
    /// Nothing can start now: wait for a running job to finish, or until
    /// this time (a backed-off machine comes back), whichever is first.
    Wait(Option<Instant>),
    /// Every wanted derivation is settled.
    Done,
}

/// Why a derivation was not built.
#[derive(Debug, Clone, PartialEq)]
pub enum NotBuilt {
    /// Its `.drv` file could not be read.
    Unreadable(String),
    /// Its own build failed (the last attempt's failure).
    Failed(Failure),
    /// No machine in the pool can ever build it.
    NoMachine(String),
    /// An input derivation was not built.
    DependencyFailed(StorePath),
    /// The schedule stopped before it started (after a failure without
    /// keep-going, or a cancel).
    Stopped,
}

impl fmt::Display for NotBuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "its derivation cannot be read: {why}"),
            Self::Failed(failure) => write!(f, "{failure}"),
            Self::NoMachine(why) => f.write_str(why),
            Self::DependencyFailed(dep) => write!(f, "its dependency {dep} was not built"),
            Self::Stopped => f.write_str("not started: the build stopped"),
        }
    }
}

/// Where a derivation stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Its `.drv` file is being read.
    Reading,
    /// Its outputs are being looked up.
    Checking,
    /// Waiting for input derivations.
    Waiting,
    /// Waiting for a machine.
    Ready,
    /// Being built.
    Running(JobId),
    /// Its outputs are in the local store (`built`: by this schedule).
    Valid {
        /// Its outputs.
        outputs: BTreeMap<OutputName, StorePath>,
        /// Whether this schedule built it (or it was there already).
        built: bool,
    },
    /// It will not be built.
    NotBuilt(NotBuilt),
}

#[derive(Debug)]
struct Node {
    drv: Option<Derivation>,
    state: State,
    /// Input derivations still to be valid.
    pending: BTreeSet<StorePath>,
    /// Derivations waiting on this one.
    dependents: BTreeSet<StorePath>,
    retries: u32,
    /// The machines it failed on for the machine's sake: its retries go
    /// elsewhere while another machine can take it.
    failed_on: BTreeSet<String>,
}

impl Node {
    fn new() -> Self {
        Self {
            drv: None,
            state: State::Reading,
            pending: BTreeSet::new(),
            dependents: BTreeSet::new(),
            retries: 0,
            failed_on: BTreeSet::new(),
        }
    }
}

/// The closure of builds (see the [module docs](self)).
#[derive(Debug)]
pub struct Schedule {
    pool: Pool,
    wanted: Vec<StorePath>,
    nodes: BTreeMap<StorePath, Node>,
    /// Derivations to read (the current level).
    reading: Vec<StorePath>,
    /// Derivations whose outputs are asked about.
    checking: Vec<StorePath>,
    ready: VecDeque<StorePath>,
    running: BTreeMap<JobId, (StorePath, Lease)>,
    next_id: u64,
    stopped: bool,
    /// Keep building what does not depend on a failed build.
    pub keep_going: bool,
    /// How many times a build is tried on machines that fail (the first
    /// try included).
    pub max_tries: u32,
}

impl Schedule {
    /// A schedule building `wanted` on the machines of `pool`.
    pub fn new(wanted: impl IntoIterator<Item = StorePath>, pool: Pool) -> Self {
        let mut wanted: Vec<StorePath> = wanted.into_iter().collect();
        wanted.dedup();
        let nodes = wanted.iter().map(|p| (p.clone(), Node::new())).collect();
        Self {
            pool,
            reading: wanted.clone(),
            wanted,
            nodes,
            checking: Vec::new(),
            ready: VecDeque::new(),
            running: BTreeMap::new(),
            next_id: 0,
            stopped: false,
            keep_going: false,
            max_tries: 3,
        }
    }

    /// The pool, with its machines' state.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What the schedule wants to learn next.
    pub fn want(&self) -> Want {
        if !self.reading.is_empty() {
            Want::ReadDerivations(self.reading.clone())
        } else if !self.checking.is_empty() {
            Want::ValidOutputs(self.outputs_to_check())
        } else {
            Want::Build
        }
    }

    /// Where `drv` stands, if the schedule knows it.
    pub fn state(&self, drv: &StorePath) -> Option<&State> {
        self.nodes.get(drv).map(|n| &n.state)
    }

    /// The derivations asked for, each with where it stands.
    pub fn wanted(&self) -> impl Iterator<Item = (&StorePath, &State)> {
        self.wanted
            .iter()
            .filter_map(|p| self.nodes.get(p).map(|n| (p, &n.state)))
    }

    /// Every derivation the schedule knows, with where it stands.
    pub fn all(&self) -> impl Iterator<Item = (&StorePath, &State)> {
        self.nodes.iter().map(|(p, n)| (p, &n.state))
    }

    /// The `.drv` files of [`Want::ReadDerivations`]: each parsed, or why it
    /// could not be read.
    pub fn derivations_read(
        &mut self,
        read: impl IntoIterator<Item = (StorePath, Result<Derivation, String>)>,
    ) {
        let reading: BTreeSet<StorePath> = self.reading.drain(..).collect();
        for (path, drv) in read {
            if !reading.contains(&path) {
                continue;
            }
            let Some(node) = self.nodes.get_mut(&path) else {
                continue;
            };
            match drv {
                Ok(drv) => {
                    node.drv = Some(drv);
                    node.state = State::Checking;
                    self.checking.push(path);
                }
                Err(why) => self.settle(&path, State::NotBuilt(NotBuilt::Unreadable(why))),
            }
        }
        for path in reading {
            if matches!(self.state(&path), Some(State::Reading)) {
                let why = NotBuilt::Unreadable("the host did not read it".into());
                self.settle(&path, State::NotBuilt(why));
            }
        }
    }

    /// The local store's valid paths among [`Want::ValidOutputs`].
    pub fn outputs_valid(&mut self, valid: impl IntoIterator<Item = StorePath>) {
        let valid: BTreeSet<StorePath> = valid.into_iter().collect();
        for path in std::mem::take(&mut self.checking) {
            let Some(node) = self.nodes.get_mut(&path) else {
                continue;
            };
            let Some(drv) = &node.drv else { continue };
            let outputs: Option<BTreeMap<OutputName, StorePath>> = drv
                .outputs
                .iter()
                .map(|(name, o)| o.path().map(|p| (name.clone(), p.clone())))
                .collect();
            if let Some(outputs) = outputs
                && outputs.values().all(|p| valid.contains(p))
            {
                self.settle(
                    &path,
                    State::Valid {
                        outputs,
                        built: false,
                    },
                );
                continue;
            }
            // To be built: its input derivations are the next level.
            let inputs: Vec<StorePath> = drv.input_drvs.keys().cloned().collect();
            node.state = State::Waiting;
            for input in inputs {
                let known = self.nodes.contains_key(&input);
                let dep = self.nodes.entry(input.clone()).or_insert_with(Node::new);
                dep.dependents.insert(path.clone());
                match &dep.state {
                    State::Valid { .. } => {}
                    State::NotBuilt(_) => {
                        let why = NotBuilt::DependencyFailed(input.clone());
                        self.settle(&path, State::NotBuilt(why));
                        break;
                    }
                    _ => {
                        if !known {
                            self.reading.push(input.clone());
                        }
                        if let Some(node) = self.nodes.get_mut(&path) {
                            node.pending.insert(input);
                        }
                    }
                }
            }
            self.ready_if_done(&path);
        }
    }

    /// The next build to start, if any can start at `now`.
    pub fn poll_job(&mut self, now: Instant) -> Next {
        if !matches!(self.want(), Want::Build) {
            return Next::Wait(None);
        }
        let mut postponed = Vec::new();
        let mut next = None;
        while let Some(path) = self.ready.pop_front() {
            if self.stopped {
                self.settle(&path, State::NotBuilt(NotBuilt::Stopped));
                continue;
            }
            let Some(node) = self.nodes.get(&path) else {
                continue;
            };
            let Some(drv) = node.drv.clone() else {
                continue;
            };
            match self
                .pool
                .acquire_avoiding(&step_of(&drv), now, &node.failed_on)
            {
                Ok(lease) => {
                    next = Some(self.start(path, drv, lease));
                    break;
                }
                Err(no) if no.is_unsupported() => {
                    let why = NotBuilt::NoMachine(no_machine_text(&path, &drv, &no));
                    self.settle(&path, State::NotBuilt(why));
                    if !self.keep_going {
                        self.stop();
                    }
                }
                Err(_) => postponed.push(path),
            }
        }
        // Those waiting for a slot keep their place in the queue.
        for path in postponed.into_iter().rev() {
            self.ready.push_front(path);
        }
        match next {
            Some(job) => Next::Run(Box::new(job)),
            None if self.running.is_empty() && self.ready.is_empty() => Next::Done,
            // Builds wait for a machine: it may be a backed-off one that
            // comes back before any running job ends.
            None if !self.ready.is_empty() => Next::Wait(self.pool.next_wakeup(now)),
            None => Next::Wait(None),
        }
    }

    /// A job ended with `outcome`; `jitter` is added to a failed machine's
    /// back-off (Hydra picks 0-29 s at random; pass zero for none).
    pub fn job_finished(
        &mut self,
        now: Instant,
        id: JobId,
        outcome: &Outcome,
        jitter: std::time::Duration,
    ) {
        let Some((path, lease)) = self.running.remove(&id) else {
            return;
        };
        let machine_failed =
            matches!(outcome, Outcome::Failed(f) if f.class() == FailureClass::Machine);
        let job_outcome = if machine_failed {
            JobOutcome::TransportFailed { jitter }
        } else {
            JobOutcome::Finished
        };
        let machine = lease.uri().to_owned();
        // The lease came from this pool, which knows its machine.
        let _ = self.pool.release(lease, job_outcome, now);
        match outcome {
            Outcome::Built { outputs, .. } => {
                let state = State::Valid {
                    outputs: outputs.clone(),
                    built: true,
                };
                self.settle(&path, state);
            }
            Outcome::Failed(failure) => {
                let tries = self.nodes.get(&path).map_or(0, |n| n.retries) + 1;
                if machine_failed && tries < self.max_tries && !self.stopped {
                    if let Some(node) = self.nodes.get_mut(&path) {
                        node.retries = tries;
                        node.state = State::Ready;
                        node.failed_on.insert(machine);
                    }
                    // First in the queue: it was started before the builds
                    // still waiting, and derivations may wait on it.
                    self.ready.push_front(path);
                    return;
                }
                if failure.class() == FailureClass::Cancelled || !self.keep_going {
                    self.stop();
                }
                self.settle(&path, State::NotBuilt(NotBuilt::Failed(failure.clone())));
            }
        }
    }

    /// A handshake with `machine` succeeded: its failure count resets.
    pub fn machine_connected(&mut self, machine: &str) {
        let _ = self.pool.handshake_succeeded(machine);
    }

    /// Starts nothing new; what runs finishes (the host may cancel it).
    pub fn stop(&mut self) {
        self.stopped = true;
        for path in std::mem::take(&mut self.ready) {
            self.settle(&path, State::NotBuilt(NotBuilt::Stopped));
        }
    }

    /// Whether [`stop`](Self::stop) was called or a failure stopped it.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The jobs running.
    pub fn running(&self) -> impl Iterator<Item = (JobId, &StorePath, &str)> {
        self.running
            .iter()
            .map(|(id, (path, lease))| (*id, path, lease.uri()))
    }

    fn start(&mut self, path: StorePath, drv: Derivation, lease: Lease) -> Job {
        let id = JobId(self.next_id);
        self.next_id += 1;
        let input_outputs = drv
            .input_drvs
            .iter()
            .flat_map(|(input, names)| {
                let outputs = match self.nodes.get(input).map(|n| &n.state) {
                    Some(State::Valid { outputs, .. }) => Some(outputs),
                    _ => None,
                };
                names
                    .iter()
                    .filter_map(move |name| outputs.and_then(|o| o.get(name)).cloned())
            })
            .collect();
        let machine = self
            .pool
            .get(lease.uri())
            .map(|m| m.machine().clone())
            .unwrap_or_else(|| Machine::with_defaults(lease.uri(), BTreeSet::new()));
        let retries = self.nodes.get(&path).map_or(0, |n| n.retries);
        if let Some(node) = self.nodes.get_mut(&path) {
            node.state = State::Running(id);
        }
        self.running.insert(id, (path.clone(), lease));
        Job {
            id,
            drv_path: path,
            drv,
            input_outputs,
            machine,
            retries,
        }
    }

    fn outputs_to_check(&self) -> Vec<StorePath> {
        let mut out: Vec<StorePath> = self
            .checking
            .iter()
            .filter_map(|p| self.nodes.get(p)?.drv.as_ref())
            .flat_map(|d| d.outputs.values().filter_map(|o| o.path().cloned()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn ready_if_done(&mut self, path: &StorePath) {
        if let Some(node) = self.nodes.get_mut(path)
            && node.state == State::Waiting
            && node.pending.is_empty()
        {
            if self.stopped {
                node.state = State::NotBuilt(NotBuilt::Stopped);
            } else {
                node.state = State::Ready;
                self.ready.push_back(path.clone());
            }
        }
    }

    /// Puts `path` in a final state and tells the derivations waiting on it.
    fn settle(&mut self, path: &StorePath, state: State) {
        let failed = matches!(state, State::NotBuilt(_));
        let Some(node) = self.nodes.get_mut(path) else {
            return;
        };
        node.state = state;
        let dependents: Vec<StorePath> = node.dependents.iter().cloned().collect();
        for dependent in dependents {
            let Some(d) = self.nodes.get_mut(&dependent) else {
                continue;
            };
            if !d.pending.remove(path) || d.state != State::Waiting {
                continue;
            }
            if failed {
                let why = NotBuilt::DependencyFailed(path.clone());
                self.settle(&dependent, State::NotBuilt(why));
            } else {
                self.ready_if_done(&dependent);
            }
        }
    }
}

/// What the pool must match for `drv`: its system and its
/// `requiredSystemFeatures`.
pub fn step_of(drv: &Derivation) -> Step {
    let features = drv
        .env
        .iter()
        .find(|(k, _)| k.as_ref() == b"requiredSystemFeatures")
        .map(|(_, v)| crate::store::lossy(v.as_ref()))
        .unwrap_or_default();
    let mut step = Step::new(&crate::store::lossy(drv.platform.as_ref()))
        .with_features(features.split_whitespace());
    step.prefer_local_build = drv
        .env
        .iter()
        .any(|(k, v)| k.as_ref() == b"preferLocalBuild" && v.as_ref() == b"1");
    step
}

fn no_machine_text(path: &StorePath, drv: &Derivation, no: &NoMachine) -> String {
    let dir = StoreDir::default();
    let step = step_of(drv);
    let features = if step.required_features.is_empty() {
        String::new()
    } else {
        let list: Vec<&str> = step.required_features.iter().map(String::as_str).collect();
        format!(" with features {}", list.join(", "))
    };
    format!(
        "no machine can build {} (system {}{features}): {no}",
        dir.display_path(path),
        step.system
    )
}
