//! Byte streams to a peer on smol: a child process, the system `ssh`
//! running a command on a host, or a daemon's unix socket.

use std::path::Path;
use std::time::Duration;

use nixwire_core::runtime::{Error, Options, Plan};
use nixwire_core::ssh;
use nixwire_core::uri::SshStore;
use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use smol::process::{Child, Command, Stdio};

pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub(crate) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// The byte stream to a peer: its stdin, its stdout and, when it has one,
/// its stderr.
pub struct Transport {
    pub(crate) stdin: Option<Writer>,
    pub(crate) stdout: Reader,
    pub(crate) stderr: Option<Reader>,
    /// The program run here (the server itself, or ssh), to wait on and
    /// kill; none for a socket.
    child: Option<Child>,
    /// The private directory of a pinned host key's known_hosts file, which
    /// ssh reads while it connects; removed when dropped.
    _dir: Option<tempfile::TempDir>,
    /// What the peer is, for messages.
    name: String,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.name)
            .finish()
    }
}

impl Transport {
    /// Runs `program` here with `args` and extra environment `envs`.
    pub fn spawn(program: &str, args: &[String], envs: &[(String, String)]) -> Result<Self, Error> {
        let mut command = Command::new(program);
        command.args(args).envs(envs.iter().map(|(k, v)| (k, v)));
        Self::start(&mut command, program, program.to_owned())
    }

    /// Runs `command` on the ssh host of `store` through the system `ssh`,
    /// with the argv of [`ssh::invocation_for`]: the user's ssh
    /// configuration applies except for what nixwire sets, and a pinned
    /// host key is the only one accepted, from a known_hosts file in a
    /// private directory. Connecting happens in ssh after this returns; a
    /// failure shows as the stream ending, with ssh's words.
    pub async fn ssh(
        store: &SshStore,
        command: &[String],
        options: &Options,
    ) -> Result<Self, Error> {
        let mut ssh_options = options.ssh.clone();
        let dir = match store.params.host_key {
            Some(_) => Some(
                tempfile::Builder::new()
                    .prefix("nixwire-ssh-")
                    .tempdir()
                    .map_err(Error::io("making the known_hosts directory"))?,
            ),
            None => None,
        };
        if let Some(dir) = &dir {
            ssh_options.known_hosts_file = Some(dir.path().join("known_hosts"));
        }
        let invocation = ssh::invocation_for(store, &ssh_options, command)?;
        if let (Some(text), Some(file)) = (&invocation.known_hosts, &ssh_options.known_hosts_file) {
            std::fs::write(file, text).map_err(Error::io("writing the pinned host key"))?;
        }
        // `Options::env` is for programs run here as servers, not for ssh,
        // which could forward it (`SendEnv`).
        let mut ssh = Command::new(&invocation.program);
        ssh.args(&invocation.args);
        let mut transport = Self::start(&mut ssh, &invocation.program, store.to_string())?;
        transport._dir = dir;
        Ok(transport)
    }

    /// Starts `command` with its three streams piped; it is killed if the
    /// transport is dropped first.
    fn start(command: &mut Command, program: &str, name: String) -> Result<Self, Error> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: program.to_owned(),
                source,
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Unsupported("a child without pipes".to_owned()));
        };
        Ok(Self {
            stdin: Some(Box::new(stdin)),
            stdout: Box::new(stdout),
            stderr: Some(Box::new(stderr)),
            child: Some(child),
            _dir: None,
            name,
        })
    }

    /// Connects to a daemon's unix socket (which has no stderr: the daemon
    /// sends its logs in the protocol).
    pub async fn unix(path: &Path) -> Result<Self, Error> {
        let stream = smol::net::unix::UnixStream::connect(path)
            .await
            .map_err(|e| Error::Connect {
                target: format!("unix://{}", path.display()),
                reason: e.to_string(),
            })?;
        // Two handles on one socket: closing the writing one shuts down our
        // direction only (`Shutdown::Write`), so the reading one goes on.
        Ok(Self {
            stdin: Some(Box::new(stream.clone())),
            stdout: Box::new(stream),
            stderr: None,
            child: None,
            _dir: None,
            name: path.display().to_string(),
        })
    }

    /// The transport `plan` says.
    pub async fn open(plan: &Plan, options: &Options) -> Result<Self, Error> {
        match plan {
            Plan::Process { program, args, .. } => Self::spawn(program, args, &options.env),
            Plan::Ssh { store, command, .. } => Self::ssh(store, command, options).await,
            Plan::Unix { path } => Self::unix(path).await,
            other => Err(Error::Unsupported(format!("cannot open {other:?}"))),
        }
    }

    /// Ends our side: the peer reads end of file. A pipe ends when dropped
    /// (its `close` only flushes); a socket's `close` shuts down writing.
    pub(crate) async fn close_input(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.close().await;
        }
    }

    /// Waits for the program here (the server, or ssh) to exit within
    /// `grace`, then kills it.
    pub(crate) async fn wait(&mut self, grace: Duration) -> Result<(), Error> {
        self.close_input().await;
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        if within(grace, child.status()).await.is_some() {
            return Ok(());
        }
        // async-process reaps it once it is gone.
        let _ = child.kill();
        Err(Error::TimedOut {
            during: "waiting for the peer to exit (killed)",
            after: grace,
        })
    }

    /// What the peer is.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `work`'s output if it is done within `limit`.
pub(crate) async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}
