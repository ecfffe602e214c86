//! A store opened through the runtime the user chose (`--runtime`), seen
//! through one blocking interface: the command runs one operation at a
//! time, so it waits on the async runtimes' futures where it stands.
//!
//! This is the one place that knows the runtimes. Copying NARs from one
//! store into another ([`Remote::copy_nars`]) is the one operation on two
//! stores at once: both run concurrently, joined by a bounded pipe (a tokio
//! duplex, a `piper` pipe, an OS pipe between two threads) that carries
//! every NAR of the copy one after another into the destination's one
//! request, so a NAR is never held whole, and each passes a [`NarCheck`]
//! on the way.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use nixwire_core::conn::Log;
use nixwire_core::flows::copy::{NarCheck, NarMismatch};
use nixwire_core::machines::Machine;
use nixwire_core::runtime::{Error, Options};
use nixwire_core::session::{BuildSettings, Info};
use nixwire_core::store::{BasicDerivation, BuildResult, PathInfo, StoreDir, StorePath};

use crate::local_nar::NarPieces;

/// Which runtime drives the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Runtime {
    /// tokio; ssh through the openssh crate.
    Tokio,
    /// smol; the system ssh.
    Smol,
    /// std threads; ssh in-process through libssh2 (reads no ssh config).
    Blocking,
}

/// An open store, whichever runtime drives it.
pub(crate) enum Remote {
    // Every tokio store of the process lives on one runtime ([`tokio_rt`]):
    // a copy drives two stores in one future.
    Tokio(Box<nixwire_tokio::Store>),
    Smol(nixwire_smol::Store),
    Blocking(nixwire_blocking::Store),
}

/// The sending half of a copy on an async runtime: each NAR of `$paths`,
/// from the files under `$files` or from `$source`, through a checking
/// [`Gate`] into `$writer`, one after another; their total size. Dropping
/// the writer at the end ends the NARs for the destination. A macro, not
/// a function: tokio's and smol's stores and writers have no common trait.
macro_rules! send_async {
    ($source:expr, $writer:expr, $paths:expr, $files:expr, $progress:expr, $dump:ident) => {
        async {
            let mut writer = $writer;
            let mut total = 0;
            for (path, info) in $paths {
                let mut out = Checked {
                    inner: writer,
                    gate: Gate::new(NarCheck::new(path, info), $progress),
                };
                let sent = match $files {
                    Some(root) => $dump(root, path, &mut out).await,
                    None => $source.nar_from_path(path, &mut out).await,
                };
                let Checked { inner, gate } = out;
                writer = inner;
                total += gate.result(sent).map_err(|e| e.about(path))?;
            }
            drop(writer);
            Ok(total)
        }
    };
}

impl Remote {
    /// Opens `uri` through `runtime`.
    pub(crate) fn open(runtime: Runtime, uri: &str, options: &Options) -> Result<Self, Error> {
        Ok(match runtime {
            Runtime::Tokio => {
                let store = tokio_rt()?.block_on(nixwire_tokio::Store::open(uri, options))?;
                Self::Tokio(Box::new(store))
            }
            Runtime::Smol => Self::Smol(smol::block_on(nixwire_smol::Store::open(uri, options))?),
            Runtime::Blocking => Self::Blocking(nixwire_blocking::Store::open(uri, options)?),
        })
    }

    /// Opens the store of a machines entry (its URI, key and pinned host
    /// key) through `runtime`.
    pub(crate) fn open_machine(
        runtime: Runtime,
        machine: &Machine,
        options: &Options,
    ) -> Result<Self, Error> {
        Ok(match runtime {
            Runtime::Tokio => {
                let open = nixwire_tokio::Store::open_machine(machine, options);
                Self::Tokio(Box::new(tokio_rt()?.block_on(open)?))
            }
            Runtime::Smol => Self::Smol(smol::block_on(nixwire_smol::Store::open_machine(
                machine, options,
            ))?),
            Runtime::Blocking => {
                Self::Blocking(nixwire_blocking::Store::open_machine(machine, options)?)
            }
        })
    }

    /// Builds `drv` on the store, every log piece to `logs` as it comes.
    pub(crate) fn build_derivation(
        &mut self,
        drv_path: &StorePath,
        drv: &BasicDerivation,
        settings: BuildSettings,
        logs: impl FnMut(&Log),
    ) -> Result<BuildResult, Error> {
        match self {
            Self::Tokio(s) => {
                tokio_rt()?.block_on(s.build_derivation(drv_path, drv, settings, logs))
            }
            Self::Smol(s) => smol::block_on(s.build_derivation(drv_path, drv, settings, logs)),
            Self::Blocking(s) => s.build_derivation(drv_path, drv, settings, logs),
        }
    }

    /// A handle that cancels what the store is doing, from another thread.
    pub(crate) fn canceller(&self) -> Canceller {
        match self {
            Self::Tokio(s) => Canceller::Tokio(s.canceller()),
            Self::Smol(s) => Canceller::Smol(s.canceller()),
            Self::Blocking(s) => Canceller::Blocking(s.canceller()),
        }
    }

    /// Discards the connection (after a cancel or a failure).
    pub(crate) fn abort(self) -> Result<(), Error> {
        match self {
            Self::Tokio(s) => tokio_rt()?.block_on(s.abort()),
            Self::Smol(s) => smol::block_on(s.abort()),
            Self::Blocking(s) => s.abort(),
        }
    }

    /// What the handshake said.
    pub(crate) fn info(&self) -> &Info {
        match self {
            Self::Tokio(s) => s.info(),
            Self::Smol(s) => s.info(),
            Self::Blocking(s) => s.info(),
        }
    }

    /// The metadata of those of `paths` the store holds, in the order asked.
    pub(crate) fn query_path_infos(
        &mut self,
        paths: &[StorePath],
    ) -> Result<Vec<(StorePath, PathInfo)>, Error> {
        match self {
            Self::Tokio(s) => tokio_rt()?.block_on(s.query_path_infos(paths)),
            Self::Smol(s) => smol::block_on(s.query_path_infos(paths)),
            Self::Blocking(s) => s.query_path_infos(paths),
        }
    }

    /// Which of `paths` the store holds.
    pub(crate) fn query_valid_paths(
        &mut self,
        paths: &[StorePath],
    ) -> Result<Vec<StorePath>, Error> {
        match self {
            Self::Tokio(s) => tokio_rt()?.block_on(s.query_valid_paths(paths)),
            Self::Smol(s) => smol::block_on(s.query_valid_paths(paths)),
            Self::Blocking(s) => s.query_valid_paths(paths),
        }
    }

    /// Streams the NARs of `paths` from `self` into `dest`, one after
    /// another through one pipe, while `dest` adds them all in one request
    /// ([`add_multiple`](nixwire_tokio::Store::add_multiple)): no round
    /// trip per path. Each NAR is checked against its info on the way.
    /// Returns their total size. Both stores must be of the same runtime.
    pub(crate) fn copy_nars(
        &mut self,
        dest: &mut Self,
        paths: &[(StorePath, PathInfo)],
        files: Option<&Path>,
        progress: &Progress<'_>,
    ) -> Result<u64, CopyNarsError> {
        match (self, dest) {
            (Self::Tokio(source), Self::Tokio(dest)) => {
                let (writer, mut reader) = tokio::io::duplex(PIPE);
                let send = send_async!(source, writer, paths, files, progress, dump_tokio);
                let receive = async {
                    dest.add_multiple(paths, &mut reader)
                        .await
                        .map_err(CopyNarsError::destination)
                };
                tokio_rt()
                    .map_err(|e| CopyNarsError::batch(CopyNarError::Source(e)))?
                    .block_on(async { tokio::try_join!(send, receive) })
                    .map(|(size, ())| size)
            }
            (Self::Smol(source), Self::Smol(dest)) => {
                let (reader, writer) = piper::pipe(PIPE);
                let mut reader = reader;
                let send = send_async!(source, writer, paths, files, progress, dump_smol);
                let receive = async {
                    dest.add_multiple(paths, &mut reader)
                        .await
                        .map_err(CopyNarsError::destination)
                };
                smol::block_on(smol::future::try_zip(send, receive)).map(|(size, ())| size)
            }
            (Self::Blocking(source), Self::Blocking(dest)) => {
                let (mut reader, writer) = io::pipe().map_err(|e| {
                    CopyNarsError::batch(CopyNarError::Source(Error::io(
                        "making a pipe between the stores",
                    )(e)))
                })?;
                let (sent, received) = std::thread::scope(|scope| {
                    let send = scope.spawn(move || {
                        let mut writer = writer;
                        let mut total = 0;
                        for (path, info) in paths {
                            let mut out = Checked {
                                inner: writer,
                                gate: Gate::new(NarCheck::new(path, info), progress),
                            };
                            let sent = match files {
                                Some(root) => dump_blocking(root, path, &mut out),
                                None => source.nar_from_path(path, &mut out),
                            };
                            let Checked { inner, gate } = out;
                            writer = inner;
                            total += gate.result(sent).map_err(|e| e.about(path))?;
                        }
                        Ok(total)
                    });
                    let received = dest.add_multiple(paths, &mut reader);
                    // The destination is done with the NARs (or failed):
                    // a source still writing gets a broken pipe, not a hang.
                    drop(reader);
                    let sent = send.join().unwrap_or_else(|_| {
                        Err(CopyNarsError::batch(CopyNarError::Source(Error::Ended {
                            during: "sending the NARs: the sending thread panicked",
                        })))
                    });
                    (sent, received)
                });
                match (sent, received) {
                    (Ok(size), Ok(())) => Ok(size),
                    // A mismatch, or a source that failed by itself, is the
                    // cause; a source that could not write was stopped by
                    // the destination's failure.
                    (
                        Err(
                            e @ CopyNarsError {
                                error: CopyNarError::Mismatch(_),
                                ..
                            },
                        ),
                        _,
                    ) => Err(e),
                    (
                        Err(CopyNarsError {
                            error: CopyNarError::Unwritable(_),
                            ..
                        }),
                        Err(e),
                    ) => Err(CopyNarsError::destination(e)),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(CopyNarsError::destination(e)),
                }
            }
            _ => Err(CopyNarsError::batch(CopyNarError::Source(
                Error::Unsupported("a copy needs both stores on the same runtime".into()),
            ))),
        }
    }

    /// Ends the session cleanly.
    pub(crate) fn close(self) -> Result<(), Error> {
        match self {
            Self::Tokio(s) => tokio_rt()?.block_on(s.close()),
            Self::Smol(s) => smol::block_on(s.close()),
            Self::Blocking(s) => s.close(),
        }
    }
}

/// Cancels what a [`Remote`] is doing, from another thread.
#[derive(Clone)]
pub(crate) enum Canceller {
    Tokio(nixwire_tokio::Canceller),
    Smol(nixwire_smol::Canceller),
    Blocking(nixwire_blocking::Canceller),
}

impl Canceller {
    /// Cancels: the store's operation returns [`Error::Cancelled`].
    pub(crate) fn cancel(&self) {
        match self {
            Self::Tokio(c) => c.cancel(),
            Self::Smol(c) => c.cancel(),
            Self::Blocking(c) => c.cancel(),
        }
    }
}

/// The pieces of `path`'s NAR read from the files under `root`.
fn pieces(root: &Path, path: &StorePath) -> Result<NarPieces, Error> {
    let full = StoreDir::default().display_path(path);
    NarPieces::new(&root.join(full.trim_start_matches('/')))
        .map_err(Error::io("reading a store path from the file system"))
}

/// Defines `$name`: `path`'s NAR from the files under `root`, written to
/// an async writer of `$write` (tokio's and smol's traits differ, the
/// code does not); its size.
macro_rules! dump_async {
    ($name:ident, $write:path, $ext:path) => {
        async fn $name(
            root: &Path,
            path: &StorePath,
            out: &mut (impl $write + Unpin),
        ) -> Result<u64, Error> {
            use $ext;
            let mut size = 0;
            for piece in pieces(root, path)? {
                let piece =
                    piece.map_err(Error::io("reading a store path from the file system"))?;
                size += piece.len() as u64;
                out.write_all(&piece)
                    .await
                    .map_err(Error::io("writing the NAR out"))?;
            }
            Ok(size)
        }
    };
}

dump_async!(dump_tokio, tokio::io::AsyncWrite, tokio::io::AsyncWriteExt);
dump_async!(dump_smol, smol::io::AsyncWrite, smol::io::AsyncWriteExt);

/// The same for a std writer.
fn dump_blocking(root: &Path, path: &StorePath, out: &mut impl io::Write) -> Result<u64, Error> {
    let mut size = 0;
    for piece in pieces(root, path)? {
        let piece = piece.map_err(Error::io("reading a store path from the file system"))?;
        size += piece.len() as u64;
        out.write_all(&piece)
            .map_err(Error::io("writing the NAR out"))?;
    }
    Ok(size)
}

/// What a copy tells of its progress: NAR bytes passed on, as they pass.
pub(crate) type Progress<'a> = dyn Fn(u64) + Sync + 'a;

/// The capacity of the pipe between the two stores of a copy: how much of
/// a NAR may be in flight between them.
const PIPE: usize = 256 * 1024;

/// The tokio runtime every tokio store of the process is opened on and
/// driven by. Each thread of the command waits on its own store's futures
/// with `block_on`; the runtime's two workers drive the I/O underneath
/// (several builds may run at once, each on its own thread).
fn tokio_rt() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::io("starting tokio"))?;
    Ok(RT.get_or_init(|| rt))
}

/// Why a NAR was not copied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyNarError {
    /// The source failed to send it.
    #[error("reading it from the source")]
    Source(#[source] Error),
    /// The NAR could not be passed on: the destination stopped reading.
    #[error("passing it to the destination")]
    Unwritable(#[source] Error),
    /// The destination failed to add it.
    #[error("adding it to the destination")]
    Destination(#[source] Error),
    /// The NAR is not the one its path info describes.
    #[error(transparent)]
    Mismatch(NarMismatch),
}

impl CopyNarError {
    /// This error, about the NAR of `path`.
    fn about(self, path: &StorePath) -> CopyNarsError {
        CopyNarsError {
            path: Some(Box::new(path.clone())),
            error: self,
        }
    }
}

/// Why the NARs of a copy were not all copied, and whose NAR was under way
/// when that is known (the destination adds them in one request, so its
/// refusal names none).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub(crate) struct CopyNarsError {
    /// The path whose NAR failed, when known (boxed: an error stays small).
    pub(crate) path: Option<Box<StorePath>>,
    /// What failed.
    #[source]
    pub(crate) error: CopyNarError,
}

impl CopyNarsError {
    /// A failure of the batch as a whole.
    fn batch(error: CopyNarError) -> Self {
        Self { path: None, error }
    }

    /// The destination's failure to add the batch.
    fn destination(error: Error) -> Self {
        Self::batch(CopyNarError::Destination(error))
    }
}

/// The NAR check between the source and the pipe: every byte is checked
/// before it is passed on, and the bytes that complete the NAR are held
/// back when it does not match, so the destination never gets a whole
/// wrong NAR to register.
struct Gate<'a> {
    check: NarCheck,
    /// Told how many bytes passed, each time some do.
    progress: &'a Progress<'a>,
    /// Bytes already checked and not yet passed on (a writer may take
    /// part of a buffer; the caller then offers the rest again).
    ahead: usize,
    mismatch: Option<NarMismatch>,
    write_failed: bool,
}

impl<'a> Gate<'a> {
    fn new(check: NarCheck, progress: &'a Progress<'a>) -> Self {
        Self {
            check,
            progress,
            ahead: 0,
            mismatch: None,
            write_failed: false,
        }
    }

    /// Checks `buf` (once) and says how much of it may be written.
    fn admit(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(m) = &self.mismatch {
            return Err(io::Error::other(m.clone()));
        }
        if self.ahead == 0 {
            self.check.update(buf);
            self.ahead = buf.len();
            if self.check.seen() >= self.check.expected_size()
                && let Err(m) = self.check.finish()
            {
                self.mismatch = Some(m.clone());
                return Err(io::Error::other(m));
            }
        }
        Ok(buf.len().min(self.ahead))
    }

    /// What a write of admitted bytes did.
    fn wrote(&mut self, result: &io::Result<usize>) {
        match result {
            Ok(n) => {
                self.ahead -= (*n).min(self.ahead);
                (self.progress)(*n as u64);
            }
            Err(_) => self.write_failed = true,
        }
    }

    /// The outcome of sending the NAR through this gate.
    fn result(self, sent: Result<u64, Error>) -> Result<u64, CopyNarError> {
        if let Some(m) = self.mismatch {
            return Err(CopyNarError::Mismatch(m));
        }
        match sent {
            Err(e) if self.write_failed => Err(CopyNarError::Unwritable(e)),
            Err(e) => Err(CopyNarError::Source(e)),
            // A NAR shorter than its path info says ends here.
            Ok(size) => self
                .check
                .finish()
                .map(|()| size)
                .map_err(CopyNarError::Mismatch),
        }
    }
}

/// A writer with a [`Gate`] in front, for each runtime's writer trait.
struct Checked<'a, W> {
    inner: W,
    gate: Gate<'a>,
}

impl<W: io::Write> io::Write for Checked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.gate.admit(buf)?;
        let result = self.inner.write(&buf[..n]);
        self.gate.wrote(&result);
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Checked<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = this.gate.admit(buf)?;
        let result = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]));
        this.gate.wrote(&result);
        Poll::Ready(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<W: smol::io::AsyncWrite + Unpin> smol::io::AsyncWrite for Checked<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = this.gate.admit(buf)?;
        let result = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]));
        this.gate.wrote(&result);
        Poll::Ready(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// The runtime options a command uses: the defaults, with `NIX_SSHOPTS`
/// honoured as Nix does.
pub(crate) fn options() -> Result<Options, String> {
    let sshopts = std::env::var("NIX_SSHOPTS").unwrap_or_default();
    Options::default()
        .with_nix_sshopts(&sshopts)
        .map_err(|e| format!("NIX_SSHOPTS: {e}"))
}

/// A `--stall-timeout` value: seconds, fractions allowed, more than zero.
pub(crate) fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|e| format!("{text:?} is not a number of seconds: {e}"))?;
    // NaN is neither: refused too.
    if !(secs.is_finite() && secs > 0.0 && secs <= 1e9) {
        return Err(format!("{text} is not a number of seconds above 0"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// An error and its causes, on one line.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    // What a peer said may span lines (ssh's own messages do).
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" / ")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use nixwire_core::store::NarHash;

    use super::*;

    fn path() -> StorePath {
        "00000000000000000000000000000000-nar"
            .parse()
            .expect("a store path")
    }

    /// The right path info for `nar`: its hash is what a check of it
    /// against nothing says it got.
    fn info_of(nar: &[u8]) -> PathInfo {
        let mut check = NarCheck::new(&path(), &PathInfo::default());
        check.update(nar);
        let got = check.finish().expect_err("an empty info mismatches");
        PathInfo {
            nar_hash: Some(NarHash::parse(&got.actual_hash).expect("SRI")),
            nar_size: nar.len() as u64,
            ..PathInfo::default()
        }
    }

    /// Writes `nar` through a gate checking it against `info`, in chunks.
    fn send(nar: &[u8], info: &PathInfo) -> (Vec<u8>, Result<u64, CopyNarError>) {
        let mut out = Checked {
            inner: Vec::new(),
            gate: Gate::new(NarCheck::new(&path(), info), &|_| {}),
        };
        let mut sent = Ok(nar.len() as u64);
        for chunk in nar.chunks(100) {
            if let Err(e) = out.write_all(chunk) {
                sent = Err(Error::io("writing the NAR out")(e));
                break;
            }
        }
        let Checked { inner, gate } = out;
        (inner, gate.result(sent))
    }

    #[test]
    fn stall_timeouts_are_positive_seconds() {
        assert_eq!(parse_seconds("2"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(
            parse_seconds("0.5"),
            Ok(std::time::Duration::from_millis(500))
        );
        for bad in ["0", "-1", "NaN", "inf", "1e20", "two", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_matching_nar_passes_whole() {
        let nar = b"nix-archive-1 and more".repeat(50);
        let (passed, result) = send(&nar, &info_of(&nar));
        assert_eq!(passed, nar);
        assert_eq!(result.expect("matches"), nar.len() as u64);
    }

    #[test]
    fn a_wrong_nar_is_held_back_before_its_last_bytes() {
        let nar = b"nix-archive-1 and more".repeat(50);
        let info = info_of(&nar);
        let mut corrupt = nar.clone();
        corrupt[5] ^= 1;
        let (passed, result) = send(&corrupt, &info);
        // Everything but the last chunk went on; the last did not.
        assert_eq!(passed.len(), (nar.len() - 1) / 100 * 100);
        let Err(CopyNarError::Mismatch(m)) = result else {
            panic!("a mismatch, not {result:?}")
        };
        assert_eq!(m.path, path());

        // Too long: refused at the first byte past the size.
        let mut long = nar.clone();
        long.extend_from_slice(b"extra");
        let (passed, result) = send(&long, &info);
        assert!(passed.len() <= nar.len());
        assert!(matches!(result, Err(CopyNarError::Mismatch(_))));

        // Too short: found when the source says the NAR ended.
        let (passed, result) = send(&nar[..nar.len() - 3], &info);
        assert_eq!(passed.len(), nar.len() - 3);
        assert!(matches!(result, Err(CopyNarError::Mismatch(_))));
    }
}
