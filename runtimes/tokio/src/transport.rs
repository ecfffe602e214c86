//! Byte streams to a peer on tokio: a child process, a command over ssh
//! (through the `openssh` crate's own ControlMaster in a private
//! directory), or a daemon's unix socket.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nixwire_core::runtime::{Error, Options, Plan};
use nixwire_core::ssh;
use nixwire_core::uri::SshStore;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// How long our ControlMaster stays with no channel before it exits (its
/// one channel opens right after it connects).
const MASTER_IDLE: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(2);

pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub(crate) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Who is at the other end, for waiting on it and killing it.
enum Peer {
    Child(tokio::process::Child),
    Ssh {
        child: Option<openssh::Child<Arc<openssh::Session>>>,
        session: Option<Arc<openssh::Session>>,
        /// The private directory of the control socket, the config and the
        /// pinned key; removed when dropped.
        _dir: tempfile::TempDir,
    },
    Socket,
}

/// The byte stream to a peer: its stdin, its stdout and, when it has one,
/// its stderr.
pub struct Transport {
    pub(crate) stdin: Option<Writer>,
    pub(crate) stdout: Reader,
    pub(crate) stderr: Option<Reader>,
    peer: Peer,
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
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
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
            peer: Peer::Child(child),
            name: program.to_owned(),
        })
    }

    /// Runs `command` on the ssh host of `store`, through a ControlMaster
    /// of our own whose socket, config and pinned host key live in a
    /// private directory (never a user's ControlMaster: NixOS/nix#14132).
    pub async fn ssh(
        store: &SshStore,
        command: &[String],
        options: &Options,
    ) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("nixwire-ssh-")
            .tempdir()
            .map_err(Error::io("making the ssh control directory"))?;
        let mut ssh_options = options.ssh.clone();
        let known_hosts = dir.path().join("known_hosts");
        ssh_options.known_hosts_file = Some(known_hosts.clone());
        let config = ssh::config_file(store, &ssh_options)?;
        if let Some(pinned) = &config.known_hosts {
            std::fs::write(&known_hosts, pinned)
                .map_err(Error::io("writing the pinned host key"))?;
        }
        let config_path = dir.path().join("config");
        std::fs::write(&config_path, &config.text).map_err(Error::io("writing the ssh config"))?;
        let mut builder = openssh::SessionBuilder::default();
        builder
            .control_directory(dir.path())
            .config_file(&config_path)
            .known_hosts_check(openssh::KnownHosts::Strict)
            // Not openssh's default (forever): a master outlives a
            // process that dies without dropping the session (SIGINT,
            // SIGKILL), and it would keep its connection to the builder
            // and its directory for good. Idle, it ends by itself; while
            // the remote command runs its channel keeps it busy.
            .control_persist(openssh::ControlPersist::IdleFor(MASTER_IDLE));
        if config.known_hosts.is_some() {
            builder.user_known_hosts_file(&known_hosts);
        }
        if let Some(t) = options.ssh.connect_timeout {
            builder.connect_timeout(t);
        }
        let connect = builder.connect(&config.destination);
        let session = match options.connect_timeout {
            Some(limit) => {
                tokio::time::timeout(limit, connect)
                    .await
                    .map_err(|_| Error::TimedOut {
                        during: "connecting through ssh",
                        after: limit,
                    })?
            }
            None => connect.await,
        }
        .map_err(|e| Error::Connect {
            target: store.to_string(),
            reason: error_chain(&e),
        })?;
        let session = Arc::new(session);
        let line = ssh::remote_command_line(command);
        let mut child = openssh::Session::arc_raw_command(session.clone(), line)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| Error::Connect {
                target: store.to_string(),
                reason: error_chain(&e),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            child.stdin().take(),
            child.stdout().take(),
            child.stderr().take(),
        ) else {
            return Err(Error::Unsupported("an ssh child without pipes".to_owned()));
        };
        Ok(Self {
            stdin: Some(Box::new(stdin)),
            stdout: Box::new(stdout),
            stderr: Some(Box::new(stderr)),
            peer: Peer::Ssh {
                child: Some(child),
                session: Some(session),
                _dir: dir,
            },
            name: store.to_string(),
        })
    }

    /// Connects to a daemon's unix socket (which has no stderr: the daemon
    /// sends its logs in the protocol).
    pub async fn unix(path: &Path) -> Result<Self, Error> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| Error::Connect {
                target: format!("unix://{}", path.display()),
                reason: e.to_string(),
            })?;
        let (read, write) = stream.into_split();
        Ok(Self {
            stdin: Some(Box::new(write)),
            stdout: Box::new(read),
            stderr: None,
            peer: Peer::Socket,
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

    /// Ends our side: the peer reads end of file.
    pub(crate) async fn close_input(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
    }

    /// Waits for the peer to exit within `grace`, then kills it (a child
    /// here) or drops the ssh channel and ends our ControlMaster.
    pub(crate) async fn wait(&mut self, grace: Duration) -> Result<(), Error> {
        self.close_input().await;
        match &mut self.peer {
            Peer::Child(child) => {
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                    return Err(Error::TimedOut {
                        during: "waiting for the peer to exit (killed)",
                        after: grace,
                    });
                }
                Ok(())
            }
            Peer::Ssh { child, session, .. } => {
                let mut late = false;
                if let Some(child) = child.take() {
                    late = tokio::time::timeout(grace, child.wait()).await.is_err();
                }
                // The child held the other reference: ours is the last, and
                // closing our ControlMaster ends every channel on it.
                if let Some(session) = session.take()
                    && let Ok(session) = Arc::try_unwrap(session)
                {
                    let _ = tokio::time::timeout(grace, session.close()).await;
                }
                if late {
                    return Err(Error::TimedOut {
                        during: "waiting for the remote command to exit",
                        after: grace,
                    });
                }
                Ok(())
            }
            Peer::Socket => Ok(()),
        }
    }

    /// What the peer is.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
