//! The STDERR stream: what a daemon sends while it works on an operation,
//! before the operation's reply (or instead of it, when it fails).
//!
//! Every operation's answer starts with zero or more of these messages and
//! ends with [`Stderr::Last`] (then the reply follows) or [`Stderr::Error`]
//! (and no reply follows). Log lines, activities and their results belong to
//! the operation under way; `Read` asks the client for more of the
//! operation's body (the pulled bodies of daemons before 1.23).
//!
//! Facts from Nix's `worker-protocol.hh` (the codes), `daemon.cc`
//! (`TunnelLogger`), `worker-protocol-connection.cc` (`processStderr`) and
//! `serialise.cc` (the structured error).

use crate::wire::{
    Cx, DecodeError, Decoded, NixString, Reader, Wire, Worker, encode_bytes, encode_u64,
};

/// `STDERR_NEXT`: a log message.
pub const STDERR_NEXT: u64 = 0x6f6c_6d67;
/// `STDERR_READ`: the daemon wants up to N bytes of the operation's body.
pub const STDERR_READ: u64 = 0x6461_7461;
/// `STDERR_WRITE`: data for the client (operations from before NARs had
/// their own replies).
pub const STDERR_WRITE: u64 = 0x6461_7416;
/// `STDERR_LAST`: the operation succeeded; its reply follows.
pub const STDERR_LAST: u64 = 0x616c_7473;
/// `STDERR_ERROR`: the operation failed; no reply follows.
pub const STDERR_ERROR: u64 = 0x6378_7470;
/// `STDERR_START_ACTIVITY`.
pub const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
/// `STDERR_STOP_ACTIVITY`.
pub const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
/// `STDERR_RESULT`: a result of an activity (a build log line, a phase).
pub const STDERR_RESULT: u64 = 0x5253_4c54;

crate::wire_enum! {
    /// What an activity is about (Nix's `ActivityType`).
    #[non_exhaustive]
    pub enum ActivityType ("an activity type") {
        /// Unspecified.
        Unknown = 0,
        /// Copying one path.
        CopyPath = 100,
        /// A download.
        FileTransfer = 101,
        /// Realising paths.
        Realise = 102,
        /// Copying several paths.
        CopyPaths = 103,
        /// A set of builds.
        Builds = 104,
        /// One build.
        Build = 105,
        /// Optimising the store.
        OptimiseStore = 106,
        /// Verifying paths.
        VerifyPaths = 107,
        /// Substituting a path.
        Substitute = 108,
        /// Querying a path's info.
        QueryPathInfo = 109,
        /// Running the post-build hook.
        PostBuildHook = 110,
        /// Waiting for a build slot.
        BuildWaiting = 111,
        /// Fetching a tree.
        FetchTree = 112,
    }
}

crate::wire_enum! {
    /// What an activity result says (Nix's `ResultType`).
    #[non_exhaustive]
    pub enum ResultType ("a result type") {
        /// A file was hard-linked.
        FileLinked = 100,
        /// A line of the build's log: the build output itself.
        BuildLogLine = 101,
        /// A path is not trusted.
        UntrustedPath = 102,
        /// A path is corrupted.
        CorruptedPath = 103,
        /// The build entered a phase (`buildPhase`).
        SetPhase = 104,
        /// Progress: done, expected, running, failed.
        Progress = 105,
        /// The expected amount of something.
        SetExpected = 106,
        /// A line of the post-build hook's log.
        PostBuildLogLine = 107,
        /// A fetch's status.
        FetchStatus = 108,
    }
}

/// A field of an activity or a result: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Type 0: an integer.
    Int(u64),
    /// Type 1: a string.
    String(NixString),
}

/// Fields travel as a count, then for each a type (0 or 1) and its value.
impl Wire<Worker> for Field {
    type Partial = ();

    fn encode(&self, _cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self {
            Self::Int(n) => {
                encode_u64(0, out);
                encode_u64(*n, out);
            }
            Self::String(s) => {
                encode_u64(1, out);
                encode_bytes(s.as_bytes(), out);
            }
        }
    }

    fn decode(_cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| match r.u64() {
            None => Ok(None),
            Some(0) => Ok(r.u64().map(Self::Int)),
            Some(1) => Ok(r.string()?.map(Self::String)),
            Some(other) => Err(DecodeError::unexpected(
                "a field type (0: integer, 1: string)",
                other.to_string(),
            )),
        })
    }
}

/// The error a daemon reports for a failed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The message, as the daemon sent it.
    pub message: NixString,
    /// The verbosity level (1.26 and later; 0 before).
    pub level: u64,
    /// The exit status (before 1.26; 1 from 1.26 on, which does not send it).
    pub status: u64,
    /// The trace lines (1.26 and later).
    pub traces: Vec<NixString>,
}

impl RemoteError {
    /// An error with `message` and nothing else.
    pub fn new(message: impl Into<NixString>) -> Self {
        Self {
            message: message.into(),
            level: 0,
            status: 1,
            traces: Vec::new(),
        }
    }
}

/// One message of the STDERR stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stderr {
    /// A log message (often ending in a newline).
    Next(NixString),
    /// The daemon wants up to this many bytes of the operation's body.
    Read(u64),
    /// Data for the client.
    Write(NixString),
    /// The operation succeeded; its reply follows.
    Last,
    /// The operation failed.
    Error(RemoteError),
    /// An activity started.
    StartActivity {
        /// Its id, unique on the connection.
        id: u64,
        /// Its verbosity level.
        level: u64,
        /// What it is about: an [`ActivityType`] code, kept as a number so
        /// that a type a newer daemon adds is passed on, not refused.
        activity: u64,
        /// Its description.
        text: NixString,
        /// Its fields (for a build: the derivation, the machine, ...).
        fields: Vec<Field>,
        /// The activity it is part of, or 0.
        parent: u64,
    },
    /// An activity stopped.
    StopActivity {
        /// Its id.
        id: u64,
    },
    /// A result of an activity.
    Result {
        /// The activity.
        id: u64,
        /// What the result says: a [`ResultType`] code, kept as a number for
        /// the same reason.
        result: u64,
        /// Its fields (a build log line: one string).
        fields: Vec<Field>,
    },
}

/// The most items of a list in a STDERR message (an activity's fields, an
/// error's trace lines). Nix sends a handful; a STDERR message is decoded at
/// once, so again from its start as its atoms arrive, and the lists in it
/// must stay short for that to stay cheap.
pub const MAX_WHOLE_LIST: u64 = 1024;

fn fields(cx: &Cx<Worker>, r: &mut Reader<'_>) -> Decoded<Vec<Field>> {
    r.check_short_list("field count", MAX_WHOLE_LIST)?;
    Vec::<Field>::decode_at_once(cx, r)
}

/// The structured error of 1.26 and later: the type `Error`, a level, a name
/// Nix no longer uses, the message, no position, and the trace lines (each
/// without a position).
fn decode_error(cx: &Cx<Worker>, r: &mut Reader<'_>) -> Decoded<RemoteError> {
    if !cx.since(1, 26) {
        let Some(message) = r.string()? else {
            return Ok(None);
        };
        return Ok(r.u64().map(|status| RemoteError {
            message,
            level: 0,
            status,
            traces: Vec::new(),
        }));
    }
    let Some(kind) = r.bytes()? else {
        return Ok(None);
    };
    if kind != b"Error" {
        return Err(DecodeError::unexpected(
            "the error type \"Error\"",
            crate::wire::show_bytes(kind),
        ));
    }
    let (Some(level), Some(_name), Some(message)) = (r.u64(), r.string()?, r.string()?) else {
        return Ok(None);
    };
    let no_position = |r: &mut Reader<'_>| match r.u64() {
        None => Ok(None),
        Some(0) => Ok(Some(())),
        Some(n) => Err(DecodeError::unexpected(
            "no error position (0)",
            n.to_string(),
        )),
    };
    if no_position(r)?.is_none() {
        return Ok(None);
    }
    r.check_short_list("trace count", MAX_WHOLE_LIST)?;
    let Some(count) = r.count()? else {
        return Ok(None);
    };
    let mut traces = Vec::new();
    for _ in 0..count {
        if no_position(r)?.is_none() {
            return Ok(None);
        }
        let Some(trace) = r.string()? else {
            return Ok(None);
        };
        traces.push(trace);
    }
    Ok(Some(RemoteError {
        message,
        level,
        status: 1,
        traces,
    }))
}

fn encode_error(error: &RemoteError, cx: &Cx<Worker>, out: &mut Vec<u8>) {
    if !cx.since(1, 26) {
        encode_bytes(error.message.as_bytes(), out);
        encode_u64(error.status, out);
        return;
    }
    encode_bytes(b"Error", out);
    encode_u64(error.level, out);
    encode_bytes(b"Error", out);
    encode_bytes(error.message.as_bytes(), out);
    encode_u64(0, out);
    encode_u64(error.traces.len() as u64, out);
    for trace in &error.traces {
        encode_u64(0, out);
        encode_bytes(trace.as_bytes(), out);
    }
}

/// Each message is its code and its fields. A message is small and made of
/// atoms, so it is taken whole.
impl Wire<Worker> for Stderr {
    type Partial = ();

    fn encode(&self, cx: &Cx<Worker>, out: &mut Vec<u8>) {
        match self {
            Self::Next(s) => {
                encode_u64(STDERR_NEXT, out);
                encode_bytes(s.as_bytes(), out);
            }
            Self::Read(n) => {
                encode_u64(STDERR_READ, out);
                encode_u64(*n, out);
            }
            Self::Write(s) => {
                encode_u64(STDERR_WRITE, out);
                encode_bytes(s.as_bytes(), out);
            }
            Self::Last => encode_u64(STDERR_LAST, out),
            Self::Error(e) => {
                encode_u64(STDERR_ERROR, out);
                encode_error(e, cx, out);
            }
            Self::StartActivity {
                id,
                level,
                activity,
                text,
                fields,
                parent,
            } => {
                encode_u64(STDERR_START_ACTIVITY, out);
                encode_u64(*id, out);
                encode_u64(*level, out);
                encode_u64(*activity, out);
                encode_bytes(text.as_bytes(), out);
                fields.encode(cx, out);
                encode_u64(*parent, out);
            }
            Self::StopActivity { id } => {
                encode_u64(STDERR_STOP_ACTIVITY, out);
                encode_u64(*id, out);
            }
            Self::Result { id, result, fields } => {
                encode_u64(STDERR_RESULT, out);
                encode_u64(*id, out);
                encode_u64(*result, out);
                fields.encode(cx, out);
            }
        }
    }

    fn decode(cx: &Cx<Worker>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        r.atomic(|r| {
            let Some(code) = r.u64() else {
                return Ok(None);
            };
            Ok(match code {
                STDERR_NEXT => r.string()?.map(Self::Next),
                STDERR_READ => r.u64().map(Self::Read),
                STDERR_WRITE => r.string()?.map(Self::Write),
                STDERR_LAST => Some(Self::Last),
                STDERR_ERROR => decode_error(cx, r)
                    .map_err(|e| e.within("STDERR_ERROR"))?
                    .map(Self::Error),
                STDERR_START_ACTIVITY => {
                    let (Some(id), Some(level), Some(activity)) = (r.u64(), r.u64(), r.u64())
                    else {
                        return Ok(None);
                    };
                    let Some(text) = r.string()? else {
                        return Ok(None);
                    };
                    let Some(fields) = fields(cx, r)? else {
                        return Ok(None);
                    };
                    r.u64().map(|parent| Self::StartActivity {
                        id,
                        level,
                        activity,
                        text,
                        fields,
                        parent,
                    })
                }
                STDERR_STOP_ACTIVITY => r.u64().map(|id| Self::StopActivity { id }),
                STDERR_RESULT => {
                    let (Some(id), Some(result)) = (r.u64(), r.u64()) else {
                        return Ok(None);
                    };
                    fields(cx, r)?.map(|fields| Self::Result { id, result, fields })
                }
                other => {
                    return Err(DecodeError::unexpected(
                        "a STDERR message code (NEXT, READ, WRITE, LAST, ERROR, \
                         START_ACTIVITY, STOP_ACTIVITY or RESULT)",
                        format!("{other:#x}"),
                    ));
                }
            })
        })
    }
}
