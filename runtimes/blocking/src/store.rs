//! A store over any transport: a [`Driver`] of a
//! [`Session`], with a method per operation.

use std::time::Instant;

use nixwire_core::conn::{Log, RequestId};
use nixwire_core::runtime::{Answers, BodyBuf, Error, Options, Plan, Step, expect, handshake_step};
use nixwire_core::session::{Answer, BuildSettings, Info, Op, Session};
use nixwire_core::store::{BasicDerivation, BuildResult, PathInfo, StorePath};
use nixwire_core::uri::StoreUri;
use std::io::{Read, Write};

use crate::driver::{Canceller, Driver};
use crate::transport::Transport;

/// How much of a NAR is read from the host's reader at once.
const CHUNK: usize = 64 * 1024;

/// A store: one connection, any protocol, many requests in flight.
pub struct Store {
    driver: Driver<Session>,
    info: Info,
    answers: Answers,
    options: Options,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("info", &self.info).finish()
    }
}

impl Store {
    /// Opens the store named by `uri` (see [`nixwire_core::uri`]).
    pub fn open(uri: &str, options: &Options) -> Result<Self, Error> {
        Self::open_uri(&uri.parse()?, options)
    }

    /// Opens the store `uri`.
    pub fn open_uri(uri: &StoreUri, options: &Options) -> Result<Self, Error> {
        let listening = std::path::Path::new(nixwire_core::runtime::DAEMON_SOCKET).exists();
        Self::open_plan(&Plan::for_uri(uri, options, listening), options)
    }

    /// Opens the store of a machines-file entry (its URI, ssh key and
    /// pinned host key).
    pub fn open_machine(
        machine: &nixwire_core::machines::Machine,
        options: &Options,
    ) -> Result<Self, Error> {
        Self::open_uri(&StoreUri::from_machine(machine)?, options)
    }

    /// Opens the store `plan` reaches, and completes the handshake within
    /// the connect timeout.
    pub fn open_plan(plan: &Plan, options: &Options) -> Result<Self, Error> {
        let transport = Transport::open(plan, options)?;
        Self::handshake(transport, plan, options)
    }

    /// Completes the handshake on an open transport.
    pub fn handshake(transport: Transport, plan: &Plan, options: &Options) -> Result<Self, Error> {
        let config = options.session_config(plan.protocol());
        let session = Session::new(config, Instant::now());
        let mut driver = Driver::new(session, transport);
        let connected = driver.run(|_, event| handshake_step(plan, event));
        let info = match connected.and_then(|r| r) {
            Ok(info) => info,
            Err(e) => {
                let _ = driver.abort(options.exit_grace);
                return Err(e);
            }
        };
        Ok(Self {
            driver,
            info,
            answers: Answers::default(),
            options: options.clone(),
        })
    }

    /// What the peer said in the handshake: protocol, versions, trust,
    /// features.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Starts `op`; many may be in flight. Wait for each with
    /// [`wait`](Self::wait), in any order.
    pub fn start(&mut self, op: Op) -> Result<RequestId, Error> {
        Ok(self.driver.conn().request(Instant::now(), op)?)
    }

    /// Waits for request `id`'s answer. A NAR's chunks and logs of requests
    /// started with [`start`](Self::start) are dropped: use the operation's
    /// own method to stream them.
    pub fn wait(&mut self, id: RequestId) -> Result<Answer, Error> {
        self.wait_with(id, |_| {})
    }

    /// The next step of request `id`: an answer kept from before, or the
    /// loop run until something concerns it.
    fn next(&mut self, id: RequestId) -> Result<Step, Error> {
        if let Some(done) = self.answers.take(id) {
            return Ok(Step::Done(done.map_err(Error::Connection)));
        }
        let answers = &mut self.answers;
        self.driver.run(|_, event| answers.sort(id, event))
    }

    fn wait_with(&mut self, id: RequestId, mut logs: impl FnMut(&Log)) -> Result<Answer, Error> {
        loop {
            match self.next(id)? {
                Step::Done(result) => return result,
                Step::Log(log) => logs(&log),
                _ => {}
            }
        }
    }

    /// Which of `paths` the store holds.
    pub fn query_valid_paths(&mut self, paths: &[StorePath]) -> Result<Vec<StorePath>, Error> {
        let id = self.start(Op::QueryValidPaths {
            paths: paths.to_vec(),
            substitute: false,
        })?;
        expect("QueryValidPaths", self.wait(id)?, |a| match a {
            Answer::ValidPaths(p) => Ok(p),
            other => Err(other),
        })
    }

    /// The metadata of those of `paths` the store holds.
    pub fn query_path_infos(
        &mut self,
        paths: &[StorePath],
    ) -> Result<Vec<(StorePath, PathInfo)>, Error> {
        let id = self.start(Op::QueryPathInfos {
            paths: paths.to_vec(),
        })?;
        expect("QueryPathInfos", self.wait(id)?, |a| match a {
            Answer::PathInfos(p) => Ok(p),
            other => Err(other),
        })
    }

    /// Streams `path`'s NAR into `out` as it arrives; returns its size.
    pub fn nar_from_path(&mut self, path: &StorePath, out: &mut impl Write) -> Result<u64, Error> {
        let id = self.start(Op::NarFromPath { path: path.clone() })?;
        let mut size = 0u64;
        loop {
            match self.next(id)? {
                Step::Chunk(data) => {
                    size += data.len() as u64;
                    out.write_all(&data)
                        .map_err(Error::io("writing the NAR out"))?;
                }
                Step::Done(result) => {
                    result?;
                    out.flush().map_err(Error::io("writing the NAR out"))?;
                    return Ok(size);
                }
                _ => {}
            }
        }
    }

    /// Adds `path` with `info`, its NAR read from `nar` as the store asks
    /// for it.
    pub fn add_to_store_nar(
        &mut self,
        path: &StorePath,
        info: &PathInfo,
        nar: &mut impl Read,
    ) -> Result<(), Error> {
        let op = Op::AddToStoreNar {
            path: path.clone(),
            info: Box::new(info.clone()),
            repair: false,
            dont_check_sigs: true,
        };
        self.add(op, nar)
    }

    /// Adds `paths` with their infos in one request (worker 1.32+:
    /// `AddMultipleToStore`; older daemons: one `AddToStoreNar` per path,
    /// pipelined; serve: one `ImportPaths`): their NARs, one after another
    /// in the order of `paths`, are read from `nar` as the store asks for
    /// them. Each NAR must be the `nar_size` its info states.
    pub fn add_multiple(
        &mut self,
        paths: &[(StorePath, PathInfo)],
        nar: &mut impl Read,
    ) -> Result<(), Error> {
        let op = Op::AddMultiple {
            paths: paths.to_vec(),
            repair: false,
            dont_check_sigs: true,
        };
        self.add(op, nar)
    }

    /// Runs `op`, whose body is NARs read from `nar` as the session asks
    /// for them (never more than it says it takes).
    fn add(&mut self, op: Op, nar: &mut impl Read) -> Result<(), Error> {
        let name = op.name();
        let id = self.start(op)?;
        let mut body = BodyBuf::new(CHUNK);
        loop {
            // The body goes out while the session wants it; its events only
            // wake this loop.
            if let Some(limit) = self.driver.conn().body_room(id, CHUNK) {
                let room = body.room(limit);
                let n = loop {
                    match nar.read(room) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        read => break read.map_err(Error::io("reading the NAR in"))?,
                    }
                };
                if n == 0 {
                    return Err(Error::Ended {
                        during: "reading the NARs to add: the input ended before the sizes their path infos state",
                    });
                }
                self.driver
                    .conn()
                    .offer_body(Instant::now(), id, body.take(n))?;
                continue;
            }
            if let Step::Done(result) = self.next(id)? {
                return expect(name, result?, |a| match a {
                    Answer::Added => Ok(()),
                    other => Err(other),
                });
            }
        }
    }

    /// Builds `drv` on the store; every log line goes to `logs` as it
    /// arrives. A failed build is a [`BuildResult`], not an error.
    pub fn build_derivation(
        &mut self,
        drv_path: &StorePath,
        drv: &BasicDerivation,
        settings: BuildSettings,
        logs: impl FnMut(&Log),
    ) -> Result<BuildResult, Error> {
        let id = self.start(Op::BuildDerivation {
            drv_path: drv_path.clone(),
            drv: Box::new(drv.clone()),
            settings,
        })?;
        expect("BuildDerivation", self.wait_with(id, logs)?, |a| match a {
            Answer::Built(r) => Ok(r),
            other => Err(other),
        })
    }

    /// Sends a worker `request` as it is ([`Op::Worker`]) and waits for its
    /// reply, every log line to `logs` as it arrives: what the typed
    /// methods do not cover (`BuildPaths`, `AddTempRoot`, settings). A
    /// worker store only; a serve store refuses it. A refusal by the
    /// daemon is an error.
    pub fn worker_request(
        &mut self,
        request: impl Into<nixwire_core::worker::Request>,
        logs: impl FnMut(&Log),
    ) -> Result<nixwire_core::worker::Reply, Error> {
        let request = request.into();
        let name = request.command().name();
        let id = self.start(Op::Worker(Box::new(request)))?;
        expect(name, self.wait_with(id, logs)?, |a| match a {
            Answer::Worker(r) => Ok(*r),
            other => Err(other),
        })
    }

    /// A handle that cancels what this store is doing, from another thread:
    /// the running operation returns [`Error::Cancelled`], the peer's stdin
    /// is closed (Nix's servers then kill their builders), and the store
    /// must be [`abort`](Self::abort)ed.
    pub fn canceller(&self) -> Canceller {
        self.driver.canceller()
    }

    /// Ends the session cleanly: our side closes, the peer exits.
    pub fn close(self) -> Result<(), Error> {
        let grace = self.options.exit_grace;
        self.driver.finish(grace, |_, _| {}).1
    }

    /// Discards the connection (after a cancel or an error): the peer's
    /// stdin closes and it is killed if it has not exited within the grace.
    pub fn abort(self) -> Result<(), Error> {
        let grace = self.options.exit_grace;
        self.driver.abort(grace)
    }
}
