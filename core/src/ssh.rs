//! The `ssh` command line for an [`SshStore`], and the pieces an in-process
//! ssh client needs instead.
//!
//! How the pieces fit:
//!
//! - [`remote_command`] is what runs on the remote machine: `nix-store
//!   --serve --write` for `ssh://`, `nix-daemon --stdio` for `ssh-ng://`
//!   (`remote-program` replaces the program, `remote-store=X` appends
//!   `--store X`), as Nix's `legacy-ssh-store.cc` and `ssh-store.cc` run
//!   them. The same words, run as a local child process, are how Nix (and
//!   Hydra) reach `ssh://localhost` without ssh
//!   ([`SshStore::is_localhost`]).
//! - [`remote_command_line`] quotes those words with [`shell_quote`] into
//!   the one string ssh sends: ssh joins its command arguments with spaces
//!   and the remote user's shell parses the result, so every word is
//!   quoted and no shell metacharacter reaches that shell bare.
//! - [`invocation`] builds the whole `ssh` argv from the store and
//!   [`SshOptions`] (timeouts, keepalives, `NIX_SSHOPTS` words split by
//!   [`split_sshopts`], where the runtime writes a pinned key). The
//!   [`Invocation`] also carries the known_hosts text ([`known_hosts_line`])
//!   the runtime must write before starting ssh.
//! - An in-process client (russh and the like) skips the argv and reads
//!   the store itself: [`SshStore::destination`],
//!   [`SshStore::port_or_default`], [`SshParams::ssh_key`](crate::uri::SshParams::ssh_key) and
//!   [`HostKey::blob`] for the pinned key. It should still keep the
//!   promises the flags below make.
//!
//! The argv, and why each flag is there (the history is in
//! `docs/ssh.md`):
//!
//! ```text
//! ssh [-p PORT] [-i KEY] -x -a -T -oBatchMode=yes -oConnectTimeout=60
//!     -oTCPKeepAlive=yes -oServerAliveInterval=15 -oServerAliveCountMax=3
//!     -oControlMaster=no -oControlPath=none -oPermitLocalCommand=no [-C]
//!     [-oUserKnownHostsFile=FILE -oGlobalKnownHostsFile=/dev/null
//!      -oStrictHostKeyChecking=yes -oHostKeyAlias=NAME -oCheckHostIP=no]
//!     [-v] [NIX_SSHOPTS…] [USER@]HOST -- REMOTE_COMMAND_LINE
//! ```
//!
//! - `-x`, `-a`: no X11 and no agent forwarding. A build machine has no use
//!   for the coordinator's display, and must not be able to sign with the
//!   coordinator's agent.
//! - `-T`: no terminal. A pty would translate line endings and eat control
//!   characters in a binary protocol, even if the user's ssh configuration
//!   asks for one.
//! - `BatchMode=yes`: never ask for a password, a passphrase or whether to
//!   trust a host key. Nobody is there to answer, so a prompt is a hang;
//!   with this, it is a failure with a message on stderr.
//! - `ConnectTimeout`: bound the connection setup. Without it a host that
//!   does not answer costs the kernel's SYN retries, minutes
//!   (NixOS/nix#1712), and steps hanging while connecting are a recurring
//!   report against remote building (hydra#1815: "stuck connecting for
//!   hours"). 60 seconds is what Hydra has used since 2015.
//! - `TCPKeepAlive=yes` and `ServerAlive*`: notice a dead peer. TCP
//!   keepalives are ssh's default (set again to override a user's
//!   configuration) but take hours by default; ssh's own probes, every
//!   15 seconds, declare the peer dead after 3 unanswered ones, so a
//!   half-open connection (a builder that rebooted, a dropped NAT entry)
//!   ends within a minute instead of blocking a build for hours
//!   (hydra#816, NixOS/nix#15620). They also keep idle-timeout middleboxes
//!   from dropping the connection during a long silent build
//!   (NixOS/nix#4427).
//! - `ControlMaster=no`, `ControlPath=none`: never share the user's
//!   multiplexed connection. A user's `ControlMaster auto` has broken Nix's
//!   ssh stores (NixOS/nix#14132, #8329); each connection here is its own,
//!   unless [`SshOptions::control_path`] names a master the runtime runs.
//! - `PermitLocalCommand=no`: a `LocalCommand` from the user's
//!   configuration writes to ssh's stdout, which is the protocol stream.
//! - `-C`: the store's `compress=true`.
//! - A pinned key (`base64-ssh-public-host-key`): the key goes into a
//!   known_hosts file of its own ([`Invocation::known_hosts`], written by
//!   the runtime at [`SshOptions::known_hosts_file`]), the only file
//!   consulted (`GlobalKnownHostsFile=/dev/null`), and
//!   `StrictHostKeyChecking=yes` refuses any other key instead of asking
//!   or learning it. `HostKeyAlias` makes ssh look the key up under the
//!   name written in that file even when the user's configuration maps the
//!   host to another `HostName`, and `CheckHostIP=no` keeps ssh from
//!   checking (and recording) the address as well.
//! - `NIX_SSHOPTS` words come after these. For `-o` options the first value
//!   ssh sees wins, so they cannot weaken the options above; set the
//!   [`SshOptions`] fields to change a timeout.
//! - `--` after the destination: ssh reads options after the destination
//!   too, and the command line must not be one of them.
//!
//! Nothing here runs ssh, reads `NIX_SSHOPTS` or writes a file: the
//! runtime does, with these values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::uri::{HostKey, RemoteProtocol, SshStore};

/// The default of [`SshOptions::connect_timeout`]: Hydra's 60 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The default of [`SshOptions::server_alive_interval`]: 15 seconds.
///
/// With [`DEFAULT_SERVER_ALIVE_COUNT_MAX`] probes, a dead peer is noticed
/// within 45 to 60 seconds, the same order as the connect timeout. Each
/// probe is one small encrypted packet, nothing next to a build's traffic,
/// and 15 seconds is below the idle timeouts of common NAT and firewall
/// state tables, which a build silent for a long time would otherwise run
/// into. (NixOS/nix#15620 proposes 30 seconds for Nix; a remote builder
/// pool wants its dead machines back sooner.)
pub const DEFAULT_SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The default of [`SshOptions::server_alive_count_max`]: ssh's own, 3.
pub const DEFAULT_SERVER_ALIVE_COUNT_MAX: u32 = 3;

/// How to run ssh, beyond what the store URI says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The ssh program: `ssh` (found on `PATH`) by default.
    pub program: String,
    /// `ConnectTimeout`, in whole seconds (rounded up, at least 1); `None`
    /// leaves it to ssh (the kernel's connect timeout). Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`, in whole seconds (rounded up, at least 1);
    /// `None` sends no probes. Default [`DEFAULT_SERVER_ALIVE_INTERVAL`].
    pub server_alive_interval: Option<Duration>,
    /// `ServerAliveCountMax`: unanswered probes before ssh gives up. Only
    /// used with an interval. Default [`DEFAULT_SERVER_ALIVE_COUNT_MAX`].
    pub server_alive_count_max: u32,
    /// More ssh arguments, placed after nixwire's own: the words of
    /// `NIX_SSHOPTS` ([`split_sshopts`]), read by the runtime.
    pub extra: Vec<String>,
    /// Where the runtime writes [`Invocation::known_hosts`] for a store
    /// with a pinned host key: an absolute path private to this
    /// connection (or store), without whitespace, quotes, backslashes or
    /// `%`, which ssh's option parser would read specially. Required when
    /// the store pins a key.
    pub known_hosts_file: Option<PathBuf>,
    /// A control socket of a master connection the runtime runs itself
    /// (`ssh -M -N -S PATH …`), to share it; same rules as
    /// [`SshOptions::known_hosts_file`]. `None` (the default) shares
    /// nothing, whatever the user's configuration says.
    pub control_path: Option<PathBuf>,
    /// `-v`: ssh's debugging output on its stderr.
    pub verbose: bool,
}

impl Default for SshOptions {
    /// `ssh`, the default timeouts and probes, nothing extra, no known_hosts
    /// file, no shared connection, quiet.
    fn default() -> Self {
        Self {
            program: "ssh".to_owned(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            server_alive_interval: Some(DEFAULT_SERVER_ALIVE_INTERVAL),
            server_alive_count_max: DEFAULT_SERVER_ALIVE_COUNT_MAX,
            extra: Vec::new(),
            known_hosts_file: None,
            control_path: None,
            verbose: false,
        }
    }
}

/// A process to start: the ssh program, its arguments, and a file to write
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program, [`SshOptions::program`].
    pub program: String,
    /// Its arguments, not including the program itself.
    pub args: Vec<String>,
    /// For a store with a pinned host key, the contents the runtime must
    /// write to [`SshOptions::known_hosts_file`] before starting the
    /// program (one [`known_hosts_line`] and a newline).
    pub known_hosts: Option<String>,
}

impl Invocation {
    /// The program followed by its arguments.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// Why an ssh command line could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SshError {
    /// A word of `NIX_SSHOPTS` that an ssh configuration file cannot say
    /// (for ssh clients driven through one).
    #[error("ssh option {word:?}: expected {expected}")]
    Option {
        /// The word.
        word: String,
        /// What would have been accepted.
        expected: &'static str,
    },

    /// `NIX_SSHOPTS` opens a quote it does not close.
    #[error(
        "NIX_SSHOPTS `{input}`: the {quote} quote at byte {at} is not closed; expected a matching {quote}"
    )]
    UnterminatedQuote {
        /// The whole text.
        input: String,
        /// `'` or `"`.
        quote: char,
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// `NIX_SSHOPTS` ends in a backslash that escapes nothing.
    #[error("NIX_SSHOPTS `{input}` ends with a lone `\\`; expected a character after it")]
    TrailingBackslash {
        /// The whole text.
        input: String,
    },
    /// A host or user that ssh would misread.
    #[error("bad ssh {part} `{value}`: expected {expected}")]
    Destination {
        /// `host` or `user`.
        part: &'static str,
        /// The value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// The store pins a host key but there is nowhere to put it.
    #[error(
        "the store `{store}` pins a host key, but no known_hosts file was given: expected SshOptions::known_hosts_file, a private path where the runtime writes the key"
    )]
    NoKnownHostsFile {
        /// The store's URI.
        store: String,
    },
    /// A path that cannot be an ssh argument.
    #[error("bad {what} path `{}`: expected {expected}", path.display())]
    Path {
        /// Which path: `ssh-key`, `known_hosts_file` or `control_path`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it must be.
        expected: &'static str,
    },
}

/// Splits `NIX_SSHOPTS` into words, as a POSIX shell splits a command's
/// arguments, without any expansion.
///
/// Words are separated by spaces, tabs and newlines. Inside single quotes
/// everything is literal; inside double quotes a backslash escapes only
/// `$`, `` ` ``, `"`, `\` and a newline (which it removes), and stays
/// otherwise; elsewhere a backslash makes the next character literal (and
/// removes a newline). `''` and `""` are empty words. `$`, `` ` ``, `~`,
/// `*` and `#` are ordinary characters: nothing is expanded, and nothing
/// is a comment.
///
/// Nix 2.8 split `NIX_SSHOPTS` on whitespace only, so a quoted option
/// with spaces (`-oProxyCommand="ssh -W %h:%p jump"`) came apart; newer
/// Nix splits with quotes, as here (it splits on spaces and tabs only, and
/// passes a trailing backslash over, which is refused here).
pub fn split_sshopts(s: &str) -> Result<Vec<String>, SshError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has begun: `''` is a word, though empty.
    let mut started = false;
    let mut chars = s.char_indices().peekable();
    let unterminated = |quote, at| SshError::UnterminatedQuote {
        input: s.to_owned(),
        quote,
        at,
    };
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\\' => match chars.next() {
                None => {
                    return Err(SshError::TrailingBackslash {
                        input: s.to_owned(),
                    });
                }
                // A line continuation.
                Some((_, '\n')) => {}
                Some((_, c)) => {
                    word.push(c);
                    started = true;
                }
            },
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        None => return Err(unterminated('\'', at)),
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        None => return Err(unterminated('"', at)),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, c @ ('$' | '`' | '"' | '\\'))) => {
                                word.push(c);
                                chars.next();
                            }
                            Some((_, '\n')) => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some((_, c)) => word.push(c),
                    }
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// The words to run on the remote machine (or locally, for a store Nix
/// reaches without ssh): `[remote-program…] --serve --write` or
/// `[remote-program…] --stdio`, then `--store X` for `remote-store=X`.
///
/// `remote-program` is split on whitespace into words, as Nix's list
/// setting is, so `remote-program=/opt/nix/bin/nix-store --option foo bar`
/// works as it does in Nix; a program that is only whitespace (which
/// parsing refuses) falls back to the default.
pub fn remote_command(store: &SshStore) -> Vec<String> {
    let mut words: Vec<String> = store
        .params
        .remote_program
        .as_deref()
        .unwrap_or_default()
        .split([' ', '\t', '\n', '\r'])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        words.push(store.protocol.default_program().to_owned());
    }
    match store.protocol {
        RemoteProtocol::Serve => words.extend(["--serve".to_owned(), "--write".to_owned()]),
        RemoteProtocol::Worker => words.push("--stdio".to_owned()),
    }
    if let Some(remote_store) = &store.params.remote_store {
        words.push("--store".to_owned());
        words.push(remote_store.clone());
    }
    words
}

/// Whether `c` needs no quoting anywhere in a word, in sh, bash or zsh.
fn is_shell_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./:,@+=".contains(c)
}

/// Quotes `word` for a POSIX shell, so that the shell reads it back as
/// exactly that one word.
///
/// A non-empty word of letters, digits and `_-./:,@+=` (not starting with
/// `=`, which zsh expands) stays bare; any other word is put in single
/// quotes, inside which every character is literal, with each `'` written
/// as `'\''` (close, an escaped quote, reopen). The empty word is `''`.
///
/// This assumes a POSIX-like shell (sh, bash, dash, zsh, ksh) on the other
/// side, as Nix does. fish reads `\\` and `\'` inside single quotes
/// specially, and csh refuses a newline in them.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty() && !word.starts_with('=') && word.chars().all(is_shell_safe) {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Joins `words` into one shell command line, every word quoted with
/// [`shell_quote`]: the string to give ssh as its command, which the remote
/// user's shell splits back into exactly `words`.
pub fn remote_command_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The name a known_hosts file gives `host` on `port`, in OpenSSH's format:
/// `host` on port 22 or no port, `[host]:port` otherwise, lowercased (ssh
/// lowercases the names it looks up).
pub fn known_hosts_name(host: &str, port: Option<u16>) -> String {
    let host = host.to_lowercase();
    match port {
        None | Some(crate::uri::DEFAULT_SSH_PORT) => host,
        Some(port) => format!("[{host}]:{port}"),
    }
}

/// One known_hosts line accepting `key` for `host` on `port`:
/// `NAME ALGORITHM BASE64`, with the name from [`known_hosts_name`], no
/// newline.
///
/// Nix writes the bare host name even for another port, where ssh looks
/// for `[host]:port`; nixwire also passes `HostKeyAlias`, so either would
/// be found, but the file says what ssh would look for by itself.
pub fn known_hosts_line(host: &str, port: Option<u16>, key: &HostKey) -> String {
    format!("{} {}", known_hosts_name(host, port), key.known_hosts_key())
}

/// Checks a path given to ssh inside a `-o` option: absolute, UTF-8, and
/// free of what ssh's option parser reads specially (whitespace and quotes
/// split or quote the value, `%` starts a token, `~` a home directory).
fn option_path<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, SshError> {
    let expected = "an absolute UTF-8 path without whitespace, quotes, backslashes or `%`";
    let bad = || SshError::Path {
        what,
        path: path.to_owned(),
        expected,
    };
    let text = path.to_str().ok_or_else(bad)?;
    let ok = text.starts_with('/')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\%".contains(c));
    if ok { Ok(text) } else { Err(bad()) }
}

/// Whole seconds for an ssh option: rounded up, at least 1.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Checks the host and user once more (a hand-built [`SshStore`] has not
/// been through the parser): neither may start with `-`, where ssh would
/// read an option, nor hold whitespace or control characters.
fn check_destination(store: &SshStore) -> Result<(), SshError> {
    let clean = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if store.host.is_empty() || store.host.starts_with('-') || !clean(&store.host) {
        return Err(SshError::Destination {
            part: "host",
            value: store.host.clone(),
            expected: "a non-empty host name not starting with `-`, without spaces or control characters",
        });
    }
    if let Some(user) = &store.user
        && (user.is_empty() || user.starts_with('-') || user.contains('@') || !clean(user))
    {
        return Err(SshError::Destination {
            part: "user",
            value: user.clone(),
            expected: "a non-empty user name not starting with `-`, without `@`, spaces or control characters",
        });
    }
    Ok(())
}

/// The `ssh` invocation that runs [`remote_command`] for `store` (the argv
/// is in the [module docs](self)).
///
/// Fails when the host or user would be read as an option, when the store
/// pins a host key and [`SshOptions::known_hosts_file`] is not set, or when
/// a path cannot be passed to ssh.
pub fn invocation(store: &SshStore, options: &SshOptions) -> Result<Invocation, SshError> {
    invocation_for(store, options, &remote_command(store))
}

/// The `ssh` invocation of [`invocation`], running `command` on the host
/// instead of the store's [`remote_command`]: for a runtime given a
/// [`Plan`](crate::runtime::Plan)'s command, which a host may have changed
/// (a test's stand-in server, a wrapper). `command` is quoted with
/// [`remote_command_line`]; it fails as [`invocation`] does.
pub fn invocation_for(
    store: &SshStore,
    options: &SshOptions,
    command: &[String],
) -> Result<Invocation, SshError> {
    check_destination(store)?;
    let mut args: Vec<String> = Vec::new();
    let mut push = |arg: String| args.push(arg);

    if let Some(port) = store.port {
        push("-p".to_owned());
        push(port.to_string());
    }
    if let Some(key) = &store.params.ssh_key {
        let text = key.to_str().ok_or_else(|| SshError::Path {
            what: "ssh-key",
            path: key.clone(),
            expected: "a UTF-8 path",
        })?;
        push("-i".to_owned());
        push(text.to_owned());
    }
    for flag in ["-x", "-a", "-T", "-oBatchMode=yes"] {
        push(flag.to_owned());
    }
    if let Some(timeout) = options.connect_timeout {
        push(format!("-oConnectTimeout={}", whole_seconds(timeout)));
    }
    push("-oTCPKeepAlive=yes".to_owned());
    if let Some(interval) = options.server_alive_interval {
        push(format!("-oServerAliveInterval={}", whole_seconds(interval)));
        push(format!(
            "-oServerAliveCountMax={}",
            options.server_alive_count_max
        ));
    }
    push("-oControlMaster=no".to_owned());
    match &options.control_path {
        Some(path) => push(format!(
            "-oControlPath={}",
            option_path("control_path", path)?
        )),
        None => push("-oControlPath=none".to_owned()),
    }
    push("-oPermitLocalCommand=no".to_owned());
    if store.params.compress {
        push("-C".to_owned());
    }
    let known_hosts =
        match &store.params.host_key {
            Some(key) => {
                let file = options.known_hosts_file.as_deref().ok_or_else(|| {
                    SshError::NoKnownHostsFile {
                        store: store.to_string(),
                    }
                })?;
                let file = option_path("known_hosts_file", file)?;
                push(format!("-oUserKnownHostsFile={file}"));
                push("-oGlobalKnownHostsFile=/dev/null".to_owned());
                push("-oStrictHostKeyChecking=yes".to_owned());
                push(format!(
                    "-oHostKeyAlias={}",
                    known_hosts_name(&store.host, store.port)
                ));
                push("-oCheckHostIP=no".to_owned());
                Some(format!(
                    "{}\n",
                    known_hosts_line(&store.host, store.port, key)
                ))
            }
            None => None,
        };
    if options.verbose {
        push("-v".to_owned());
    }
    for word in &options.extra {
        push(word.clone());
    }
    push(store.destination());
    push("--".to_owned());
    push(remote_command_line(command));

    Ok(Invocation {
        program: options.program.clone(),
        args,
        known_hosts,
    })
}

/// An ssh configuration for one connection, for ssh clients driven through
/// a configuration file rather than an argument list (the `openssh` crate
/// runs `ssh -F FILE` for its ControlMaster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The destination to give ssh: the host alone (the user, port and key
    /// are in the file).
    pub destination: String,
    /// The file's text.
    pub text: String,
    /// For a store with a pinned host key, the contents of
    /// [`SshOptions::known_hosts_file`], as in [`Invocation::known_hosts`].
    pub known_hosts: Option<String>,
}

/// The ssh configuration that gives the same connection as [`invocation`]:
/// the same options as `Key value` lines, `NIX_SSHOPTS`' words translated
/// (`-oKey=Value`, `-o Key=Value`, `-p`, `-i`, `-l`, `-C`, `-4`, `-6`, `-v`,
/// `-q`; any other word is refused, naming it), then the user's and the
/// system's configuration files included, so that host aliases and the
/// like still apply to what nixwire does not set (ssh takes the first value
/// it reads for each option).
pub fn config_file(store: &SshStore, options: &SshOptions) -> Result<ConfigFile, SshError> {
    let invocation = invocation(store, options)?;
    let mut lines: Vec<String> = vec!["# One nixwire connection; written by nixwire.".to_owned()];
    let mut words = invocation.args.iter();
    let destination = store.destination();
    while let Some(word) = words.next() {
        if *word == destination {
            // The destination, then `--` and the remote command: not
            // configuration.
            break;
        }
        let mut value = |flag: &str| {
            words.next().cloned().ok_or_else(|| SshError::Option {
                word: flag.to_owned(),
                expected: "a value after it",
            })
        };
        let line = match word.as_str() {
            "-x" => "ForwardX11 no".to_owned(),
            "-a" => "ForwardAgent no".to_owned(),
            "-T" => "RequestTTY no".to_owned(),
            "-C" => "Compression yes".to_owned(),
            "-4" => "AddressFamily inet".to_owned(),
            "-6" => "AddressFamily inet6".to_owned(),
            "-v" => "LogLevel VERBOSE".to_owned(),
            "-q" => "LogLevel QUIET".to_owned(),
            "-p" => format!("Port {}", value("-p")?),
            "-i" => format!("IdentityFile {}", value("-i")?),
            "-l" => format!("User {}", value("-l")?),
            "-o" => option_line(&value("-o")?)?,
            w if w.starts_with("-o") => option_line(&w[2..])?,
            other => {
                return Err(SshError::Option {
                    word: other.to_owned(),
                    expected: "an option an ssh configuration file can say \
                               (-o, -p, -i, -l, -C, -4, -6, -v, -q)",
                });
            }
        };
        lines.push(line);
    }
    if let Some(user) = &store.user {
        lines.push(format!("User {user}"));
    }
    lines.push("Include ~/.ssh/config".to_owned());
    lines.push("Include /etc/ssh/ssh_config".to_owned());
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(ConfigFile {
        destination: store.host.clone(),
        text,
        known_hosts: invocation.known_hosts,
    })
}

/// `Key=Value` (or `Key Value`) as a configuration line.
fn option_line(option: &str) -> Result<String, SshError> {
    match option.split_once(['=', ' ']) {
        Some((key, value)) if !key.is_empty() && !value.trim().is_empty() => {
            Ok(format!("{key} {}", value.trim()))
        }
        _ => Err(SshError::Option {
            word: format!("-o{option}"),
            expected: "-oKey=Value",
        }),
    }
}
