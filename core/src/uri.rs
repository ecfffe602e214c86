//! Store URIs as Nix spells them: `ssh://`, `ssh-ng://`, `unix://`,
//! `daemon`, `local`, `auto` and bare paths, each with `?name=value`
//! parameters.
//!
//! How the pieces fit:
//!
//! - [`StoreUri`] is a parsed URI ([`FromStr`]), and writes itself back
//!   ([`Display`](fmt::Display)) so that parsing the text gives the same
//!   value again. Errors are [`UriError`]s naming the part that was wrong.
//! - [`SshStore`] is the remote end of an `ssh://` (serve protocol,
//!   `nix-store --serve`) or `ssh-ng://` (worker protocol, `nix-daemon
//!   --stdio`) store: [`RemoteProtocol`], user, host, port and the
//!   [`SshParams`] Nix knows for ssh stores. [`crate::ssh`] turns one into an
//!   `ssh` command line; in-process ssh clients read its fields.
//! - [`HostKey`] is a pinned public host key (`base64-ssh-public-host-key`,
//!   or column 8 of a machines file), decoded and checked once.
//! - `StoreUri::from_machine` (cargo feature `machines`) completes a
//!   machines entry's URI with its key columns, as Nix does before opening
//!   the store.
//!
//! What is parsed as Nix parses it (Nix 2.8's `store-api.cc` and newer
//! Nix's `store-reference.cc`):
//!
//! - The query is everything after the first `?`, split on `&`; each item is
//!   `name=value`, both percent-decoded (`+` stays `+`). Parameters Nix
//!   accepts on any store (`trusted`, `priority`, `want-mass-query`,
//!   `path-info-cache-size`, `store`, `state`, `real`, `log`, `system-features`,
//!   ...) and any nixwire does not know are kept as given, in the variant's
//!   `others`/`params` map, so nothing is lost on the way back to text.
//! - `daemon`, `local` and `auto` (or the empty string) are the special
//!   stores; anything else without `://` that contains a `/` is a path to a
//!   local store's root (`/path` means `local?root=/path`).
//! - In an ssh authority, an IPv6 address is written in brackets
//!   (`ssh://[::1]:2222`); an unbracketed one is accepted when it parses as
//!   an address (older Nix allowed it), but then cannot have a port.
//!
//! Where nixwire is stricter than Nix, a URI Nix would read with a surprise
//! is refused with a reason: a parameter without `=` or given twice (Nix
//! drops one or keeps one silently), a host or user starting with `-`
//! (which ssh would read as an option), a password in the user part, a
//! path after an ssh host (Nix 2.8 passed it to ssh as part of the host
//! name), both a store path and `root=`, and a pinned host key that does
//! not hold one public key line. A `:port` is read as a port, as newer Nix
//! does (Nix 2.8 passed `host:2222` to ssh as the host name).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use core::net::Ipv6Addr;

use thiserror::Error;

use crate::store::base64;

/// Query parameters: names and values, percent-decoded, in name order.
pub type Params = BTreeMap<String, String>;

/// The URI schemes this module parses, in the order error messages list
/// them.
pub const SCHEMES: &[&str] = &["ssh", "ssh-ng", "unix", "local"];

/// The port ssh connects to when a URI names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// A parsed store URI.
///
/// Every variant keeps the parameters it does not interpret, so that
/// [`Display`](fmt::Display) writes back everything that was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// A URI is parsed once per store and kept whole, never in bulk; boxing the
// ssh variant would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
pub enum StoreUri {
    /// `ssh://…` or `ssh-ng://…`: a store reached by running a Nix program
    /// on a remote machine over ssh.
    Ssh(SshStore),
    /// `unix:///path/to/socket`: a Nix daemon listening on that Unix socket.
    Unix {
        /// The socket's absolute path.
        path: PathBuf,
        /// The URI's parameters.
        params: Params,
    },
    /// `daemon` (or `unix://` without a path): the local Nix daemon on its
    /// default socket.
    Daemon {
        /// The URI's parameters.
        params: Params,
    },
    /// `local`, `local:///root`, or a bare path: the local store opened
    /// directly, not through the daemon.
    Local {
        /// The store's root (its `root` parameter, or the bare path), as
        /// written. A relative path is relative to the working directory of
        /// whoever opens the store (Nix makes it absolute when it opens it;
        /// this module reads no environment).
        root: Option<PathBuf>,
        /// The URI's other parameters.
        params: Params,
    },
    /// `auto` (or the empty string): Nix's choice between the local store
    /// and the daemon, made when the store is opened.
    Auto {
        /// The URI's parameters.
        params: Params,
    },
}

/// Which protocol an ssh store speaks, decided by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemoteProtocol {
    /// `ssh://`: the serve protocol, spoken by `nix-store --serve --write`
    /// ([`crate::serve`]).
    Serve,
    /// `ssh-ng://`: the worker protocol, spoken by `nix-daemon --stdio`
    /// ([`crate::worker`]).
    Worker,
}

impl RemoteProtocol {
    /// The URI scheme: `ssh` or `ssh-ng`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Serve => "ssh",
            Self::Worker => "ssh-ng",
        }
    }

    /// The program Nix runs on the remote machine unless `remote-program`
    /// says otherwise: `nix-store` or `nix-daemon`.
    pub fn default_program(self) -> &'static str {
        match self {
            Self::Serve => "nix-store",
            Self::Worker => "nix-daemon",
        }
    }
}

/// The remote end of an `ssh://` or `ssh-ng://` store.
///
/// Parsing checks every field; a value built by hand is checked again
/// where it matters ([`crate::ssh::invocation`] refuses a host or user that
/// ssh would read as an option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshStore {
    /// Which protocol, hence which remote program.
    pub protocol: RemoteProtocol,
    /// The remote user, percent-decoded; `None` leaves the choice to ssh
    /// (its configuration, else the local user name).
    pub user: Option<String>,
    /// The host name or address. An IPv6 address is kept without its
    /// brackets, with a zone as `%zone` (`fe80::1%eth0`).
    pub host: String,
    /// The port, if the URI gives one (ssh's default is
    /// [`DEFAULT_SSH_PORT`]; see [`SshStore::port_or_default`]).
    pub port: Option<u16>,
    /// The URI's parameters.
    pub params: SshParams,
}

impl SshStore {
    /// A store on `host` speaking `protocol`, with no user, port or
    /// parameters.
    pub fn new(protocol: RemoteProtocol, host: impl Into<String>) -> Self {
        Self {
            protocol,
            user: None,
            host: host.into(),
            port: None,
            params: SshParams::default(),
        }
    }

    /// The port to connect to: the URI's, else 22. For in-process ssh
    /// clients, which have no ssh configuration to fall back on.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_SSH_PORT)
    }

    /// `user@host` or `host`: the destination argument of `ssh`. An IPv6
    /// address stays unbracketed, as ssh wants it there.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The authority as the URI writes it: `[user@]host[:port]`, IPv6
    /// addresses in brackets and the user percent-encoded.
    pub fn authority(&self) -> String {
        let mut out = String::new();
        if let Some(user) = &self.user {
            out.push_str(&percent_encode(user, is_user_char));
            out.push('@');
        }
        if self.host.contains(':') {
            // A zone's `%` must be escaped inside a URI.
            out.push('[');
            out.push_str(&self.host.replace('%', "%25"));
            out.push(']');
        } else {
            out.push_str(&self.host);
        }
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out
    }

    /// Whether Nix would skip ssh for this store: its authority is exactly
    /// `localhost` (no user, no port), for which Nix runs the remote
    /// command as a local process. A runtime copying that behaviour runs
    /// [`crate::ssh::remote_command`] directly.
    pub fn is_localhost(&self) -> bool {
        self.user.is_none() && self.port.is_none() && self.host == "localhost"
    }
}

/// The parameters Nix knows for ssh stores, typed, and all others as given.
///
/// Defaults (every field empty or false) are Nix's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshParams {
    /// `ssh-key`: the private key ssh authenticates with (`ssh -i`).
    pub ssh_key: Option<PathBuf>,
    /// `base64-ssh-public-host-key`: the host key to accept, and no other.
    pub host_key: Option<HostKey>,
    /// `remote-program`: what to run instead of `nix-store` (`ssh://`) or
    /// `nix-daemon` (`ssh-ng://`). Split on whitespace into words, as newer
    /// Nix does (Nix 2.8 put the text into a shell command, which split it
    /// the same way for plain words).
    pub remote_program: Option<String>,
    /// `remote-store`: the store the remote program should use (`--store`).
    pub remote_store: Option<String>,
    /// `compress`: ssh compression (`ssh -C`).
    pub compress: bool,
    /// `max-connections`: how many connections to the store at once (Nix's
    /// default is 1, and Nix takes 0 as 1).
    pub max_connections: Option<u32>,
    /// Every other parameter, percent-decoded, such as `trusted`,
    /// `priority` or `system-features`.
    pub others: Params,
}

impl SshParams {
    /// Takes the parameters this type knows out of `params`, leaving the
    /// rest as [`SshParams::others`].
    fn from_params(uri: &str, mut params: Params) -> Result<Self, UriError> {
        let bad = |name: &str, value: &str, expected: &str| UriError::Parameter {
            uri: uri.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let mut out = Self::default();
        // An empty value means "not set" for these, as in Nix, where the
        // empty string is each setting's default.
        if let Some(v) = params.remove("ssh-key").filter(|v| !v.is_empty()) {
            out.ssh_key = Some(PathBuf::from(v));
        }
        if let Some(v) = params
            .remove("base64-ssh-public-host-key")
            .filter(|v| !v.is_empty())
        {
            out.host_key = Some(
                HostKey::from_base64(&v).map_err(|problem| UriError::HostKey {
                    uri: uri.to_owned(),
                    from: "parameter `base64-ssh-public-host-key`".to_owned(),
                    problem,
                })?,
            );
        }
        if let Some(v) = params.remove("remote-program") {
            if v.split_whitespace().next().is_none() {
                return Err(bad(
                    "remote-program",
                    &v,
                    "a program to run on the remote machine, such as `/run/current-system/sw/bin/nix-store`",
                ));
            }
            out.remote_program = Some(v);
        }
        if let Some(v) = params.remove("remote-store").filter(|v| !v.is_empty()) {
            out.remote_store = Some(v);
        }
        if let Some(v) = params.remove("compress") {
            out.compress = parse_bool(&v)
                .ok_or_else(|| bad("compress", &v, "`true` or `false` (or yes/no, 1/0)"))?;
        }
        if let Some(v) = params.remove("max-connections") {
            let n = parse_decimal(&v).ok_or_else(|| {
                bad(
                    "max-connections",
                    &v,
                    "a non-negative whole number below 2^32",
                )
            })?;
            out.max_connections = Some(n);
        }
        out.others = params;
        Ok(out)
    }

    /// All parameters as text, typed ones included, as the URI writes them.
    pub fn to_params(&self) -> Params {
        let mut out = self.others.clone();
        if let Some(key) = &self.ssh_key {
            out.insert("ssh-key".into(), key.to_string_lossy().into_owned());
        }
        if let Some(key) = &self.host_key {
            out.insert("base64-ssh-public-host-key".into(), key.to_base64());
        }
        if let Some(program) = &self.remote_program {
            out.insert("remote-program".into(), program.clone());
        }
        if let Some(store) = &self.remote_store {
            out.insert("remote-store".into(), store.clone());
        }
        if self.compress {
            out.insert("compress".into(), "true".into());
        }
        if let Some(n) = self.max_connections {
            out.insert("max-connections".into(), n.to_string());
        }
        out
    }
}

/// Nix's boolean setting values.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Decimal digits only: no sign, no spaces.
fn parse_decimal<T: FromStr>(v: &str) -> Option<T> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A pinned ssh public host key: one line of an OpenSSH public key file,
/// `ALGORITHM BASE64 [COMMENT]`, such as `ssh-ed25519 AAAAC3Nz… root@builder`.
///
/// Nix takes it base64-encoded (the URI parameter
/// `base64-ssh-public-host-key`, a machines file's column 8), decodes it and
/// writes it after the host name into a known_hosts file. Parsing checks
/// what ssh would otherwise reject only at connection time: that the text
/// is one line, that the body is base64, and that the key blob inside names
/// the same algorithm as the line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostKey {
    algorithm: String,
    body: String,
    blob: Vec<u8>,
    comment: Option<String>,
}

impl HostKey {
    /// Reads a key from its base64 encoding (the form URIs and machines
    /// files carry), decoding the base64 as leniently as Nix does.
    pub fn from_base64(text: &str) -> Result<Self, HostKeyError> {
        let bytes = base64::decode_lenient(text.as_bytes()).map_err(|e| {
            // A byte outside the alphabet is ASCII or starts a character,
            // so the offset is on a character boundary.
            let found = text
                .get(e.position..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or_else(|| char::from(e.found));
            HostKeyError::Base64 {
                position: e.position,
                found,
            }
        })?;
        let line = String::from_utf8(bytes).map_err(|_| HostKeyError::NotText)?;
        // Files made with `base64 < key.pub` end in a newline.
        let line = line.trim_end_matches(['\n', '\r', ' ', '\t']);
        let lines = line.split('\n').count();
        if lines > 1 {
            return Err(HostKeyError::SeveralLines { lines });
        }
        line.parse()
    }

    /// The key algorithm, such as `ssh-ed25519` or `ecdsa-sha2-nistp256`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The key blob, base64-encoded as the line has it.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The key blob, decoded: what an in-process ssh client compares the
    /// server's key with.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The comment after the key, if any (often `root@hostname`).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// `ALGORITHM BASE64`: the key as a known_hosts line has it after the
    /// host names (the comment left out).
    pub fn known_hosts_key(&self) -> String {
        format!("{} {}", self.algorithm, self.body)
    }

    /// The whole line (comment included), base64-encoded: the value of
    /// `base64-ssh-public-host-key`.
    pub fn to_base64(&self) -> String {
        base64::encode(self.to_string().as_bytes())
    }
}

impl FromStr for HostKey {
    type Err = HostKeyError;

    /// Reads one public key line, `ALGORITHM BASE64 [COMMENT]`.
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim_matches([' ', '\t', '\r', '\n']);
        if line.is_empty() {
            return Err(HostKeyError::Empty);
        }
        if line.contains('\n') {
            return Err(HostKeyError::SeveralLines {
                lines: line.split('\n').count(),
            });
        }
        // A control character would end up in the known_hosts file.
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(HostKeyError::NotAKeyLine {
                line: line.escape_debug().to_string(),
            });
        }
        let mut fields = line.splitn(3, [' ', '\t']);
        let algorithm = fields.next().unwrap_or_default();
        let Some(body) = fields.next() else {
            return Err(HostKeyError::NotAKeyLine {
                line: line.to_owned(),
            });
        };
        let comment = fields
            .next()
            .map(|c| c.trim_matches([' ', '\t']))
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        // Key type names are letters, digits and `-`, `.`, `@`, `_`
        // (`sk-ssh-ed25519@openssh.com`). A leading `@` is a known_hosts
        // marker (`@cert-authority`), not a key.
        let algorithm_ok = algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.@_".contains(&b))
            && !algorithm.starts_with('@');
        if !algorithm_ok {
            return Err(HostKeyError::Algorithm {
                algorithm: algorithm.to_owned(),
            });
        }
        let blob =
            data_encoding::BASE64
                .decode(body.as_bytes())
                .map_err(|e| HostKeyError::Body {
                    algorithm: algorithm.to_owned(),
                    reason: format!("it is not padded base64 ({e})"),
                })?;
        match blob_algorithm(&blob) {
            Some(name) if name == algorithm.as_bytes() => {}
            Some(name) => {
                return Err(HostKeyError::Body {
                    algorithm: algorithm.to_owned(),
                    reason: format!(
                        "the key inside is a `{}` key",
                        String::from_utf8_lossy(name)
                    ),
                });
            }
            None => {
                return Err(HostKeyError::Body {
                    algorithm: algorithm.to_owned(),
                    reason: "it is too short to be a key".to_owned(),
                });
            }
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            body: body.to_owned(),
            blob,
            comment,
        })
    }
}

impl HostKey {
    /// The key a server offered, from its wire form (the SSH public key
    /// blob, which names its algorithm first), as an in-process ssh client
    /// sees it: to compare with a pinned key, or to show the
    /// `base64-ssh-public-host-key` that would pin it.
    pub fn from_blob(blob: &[u8]) -> Result<Self, HostKeyError> {
        let algorithm = blob_algorithm(blob)
            .and_then(|name| std::str::from_utf8(name).ok())
            .ok_or_else(|| HostKeyError::Body {
                algorithm: "?".to_owned(),
                reason: "the key does not name its algorithm".to_owned(),
            })?;
        format!("{algorithm} {}", data_encoding::BASE64.encode(blob)).parse()
    }
}

/// The algorithm an OpenSSH key blob names: its first field, an ssh string
/// (a 4-byte big-endian length, then the name).
fn blob_algorithm(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4usize.checked_add(len)?)
}

impl fmt::Display for HostKey {
    /// The public key line, comment included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.body)?;
        if let Some(comment) = &self.comment {
            write!(f, " {comment}")?;
        }
        Ok(())
    }
}

/// Why a pinned host key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HostKeyError {
    /// The base64 encoding has a byte outside the alphabet.
    #[error(
        "it is not base64: `{found}` at byte {position} (expected A-Z, a-z, 0-9, `+`, `/`, then `=` padding)"
    )]
    Base64 {
        /// Byte offset of the bad character.
        position: usize,
        /// The bad character.
        found: char,
    },
    /// The decoded bytes are not UTF-8 text.
    #[error(
        "it decodes to bytes that are not text; expected a public key line such as `ssh-ed25519 AAAA…`, base64-encoded"
    )]
    NotText,
    /// There is no key at all.
    #[error("it is empty; expected a public key line such as `ssh-ed25519 AAAA…`")]
    Empty,
    /// More than one line.
    #[error("it holds {lines} lines; expected one public key line")]
    SeveralLines {
        /// How many lines.
        lines: usize,
    },
    /// One word only.
    #[error(
        "`{line}` is not a public key line: expected `ALGORITHM BASE64 [COMMENT]`, such as `ssh-ed25519 AAAA…`"
    )]
    NotAKeyLine {
        /// The line.
        line: String,
    },
    /// The first word is not a key type name.
    #[error(
        "`{algorithm}` is not a key algorithm: expected a name such as `ssh-ed25519` or `ecdsa-sha2-nistp256`"
    )]
    Algorithm {
        /// The first word.
        algorithm: String,
    },
    /// The second word is not a key of the named algorithm.
    #[error("the body of the `{algorithm}` key is not one: {reason}")]
    Body {
        /// The line's algorithm.
        algorithm: String,
        /// What is wrong with the body.
        reason: String,
    },
}

/// Why a store URI was refused. Every variant names the part of the URI
/// that is wrong, what it held and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not a URI (no `scheme://`), not a special store, not a path.
    #[error(
        "`{uri}` is not a store URI: expected `scheme://…` (one of {}), `daemon`, `local`, `auto` or a path",
        SCHEMES.join(", ")
    )]
    NotAStoreUri {
        /// The whole URI.
        uri: String,
    },
    /// A scheme this module does not speak.
    #[error(
        "unknown scheme `{scheme}` in store URI `{uri}`: expected one of {}",
        SCHEMES.join(", ")
    )]
    Scheme {
        /// The whole URI.
        uri: String,
        /// The scheme found.
        scheme: String,
    },
    /// The user name before `@` in an ssh URI.
    #[error("bad user `{user}` in store URI `{uri}`: expected {expected}")]
    User {
        /// The whole URI.
        uri: String,
        /// The user as written.
        user: String,
        /// What a user name must be.
        expected: &'static str,
    },
    /// The host in an ssh URI.
    #[error("bad host `{host}` in store URI `{uri}`: expected {expected}")]
    Host {
        /// The whole URI.
        uri: String,
        /// The host as written (brackets included).
        host: String,
        /// What a host must be.
        expected: &'static str,
    },
    /// The port in an ssh URI.
    #[error("bad port `{port}` in store URI `{uri}`: expected {expected}")]
    Port {
        /// The whole URI.
        uri: String,
        /// The port as written.
        port: String,
        /// What a port must be.
        expected: &'static str,
    },
    /// The path part: after an ssh host (where there is none) or of a
    /// socket or store root.
    #[error("bad path `{path}` in store URI `{uri}`: expected {expected}")]
    Path {
        /// The whole URI.
        uri: String,
        /// The path as written.
        path: String,
        /// What the path must be.
        expected: &'static str,
    },
    /// A query parameter.
    #[error("bad parameter `{name}` = `{value}` in store URI `{uri}`: expected {expected}")]
    Parameter {
        /// The whole URI.
        uri: String,
        /// The parameter's name (decoded if it could be).
        name: String,
        /// Its value (decoded if it could be).
        value: String,
        /// What it must be.
        expected: String,
    },
    /// A pinned host key that is not one.
    #[error("bad ssh public host key in {from} of store URI `{uri}`: {problem}")]
    HostKey {
        /// The whole URI.
        uri: String,
        /// Where the key came from: the parameter, or a machines column.
        from: String,
        /// What is wrong with it.
        problem: HostKeyError,
    },
}

impl FromStr for StoreUri {
    type Err = UriError;

    /// Parses a store URI. Errors come in reading order: the scheme, then
    /// the authority or path, then the parameters.
    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        // The query is split off first: its values may contain `://`
        // themselves (`remote-store=ssh://…`).
        let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
        let params = || parse_query(uri, query);
        let Some((scheme, rest)) = base.split_once("://") else {
            return match base {
                "" | "auto" => Ok(Self::Auto { params: params()? }),
                "daemon" => Ok(Self::Daemon { params: params()? }),
                "local" => {
                    let mut params = params()?;
                    let root = params.remove("root").map(PathBuf::from);
                    Ok(Self::Local { root, params })
                }
                // Nix's test for a path: no `://` (checked) and a `/`.
                path if path.contains('/') => {
                    let params = params()?;
                    refuse_root_param(uri, &params, path)?;
                    Ok(Self::Local {
                        root: Some(PathBuf::from(path)),
                        params,
                    })
                }
                _ => Err(UriError::NotAStoreUri {
                    uri: uri.to_owned(),
                }),
            };
        };
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
        if !scheme_ok {
            return Err(UriError::NotAStoreUri {
                uri: uri.to_owned(),
            });
        }
        match scheme {
            "ssh" => parse_ssh(uri, RemoteProtocol::Serve, rest, query),
            "ssh-ng" => parse_ssh(uri, RemoteProtocol::Worker, rest, query),
            "unix" => {
                if rest.is_empty() {
                    return Ok(Self::Daemon { params: params()? });
                }
                let path = absolute_path(
                    uri,
                    rest,
                    "an absolute socket path, as in `unix:///nix/var/nix/daemon-socket/socket`",
                )?;
                Ok(Self::Unix {
                    path,
                    params: params()?,
                })
            }
            "local" => {
                let mut params = params()?;
                if rest.is_empty() {
                    let root = params.remove("root").map(PathBuf::from);
                    return Ok(Self::Local { root, params });
                }
                let root = absolute_path(
                    uri,
                    rest,
                    "an absolute store root, as in `local:///mnt/nix`, or nothing",
                )?;
                refuse_root_param(uri, &params, rest)?;
                Ok(Self::Local {
                    root: Some(root),
                    params,
                })
            }
            _ => Err(UriError::Scheme {
                uri: uri.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// A store root given twice, as a path and as `root=`, is refused: Nix
/// would silently take the path.
fn refuse_root_param(uri: &str, params: &Params, path: &str) -> Result<(), UriError> {
    match params.get("root") {
        Some(root) => Err(UriError::Parameter {
            uri: uri.to_owned(),
            name: "root".to_owned(),
            value: root.clone(),
            expected: format!("no `root` parameter, since the URI's path `{path}` is the root"),
        }),
        None => Ok(()),
    }
}

/// The percent-decoded absolute path after `unix://` or `local://`.
fn absolute_path(uri: &str, raw: &str, expected: &'static str) -> Result<PathBuf, UriError> {
    let bad = || UriError::Path {
        uri: uri.to_owned(),
        path: raw.to_owned(),
        expected,
    };
    if !raw.starts_with('/') {
        return Err(bad());
    }
    percent_decode(raw).map(PathBuf::from).ok_or_else(bad)
}

/// Splits and decodes the query (the text after `?`).
fn parse_query(uri: &str, query: &str) -> Result<Params, UriError> {
    let mut params = Params::new();
    for item in query.split('&').filter(|item| !item.is_empty()) {
        let Some((raw_name, raw_value)) = item.split_once('=') else {
            return Err(UriError::Parameter {
                uri: uri.to_owned(),
                name: item.to_owned(),
                value: String::new(),
                expected: "`name=value` (Nix ignores a parameter without `=`)".to_owned(),
            });
        };
        let decoded = |raw: &str| {
            percent_decode(raw).ok_or_else(|| UriError::Parameter {
                uri: uri.to_owned(),
                name: raw_name.to_owned(),
                value: raw_value.to_owned(),
                expected: "`%` followed by two hex digits, decoding to UTF-8 text".to_owned(),
            })
        };
        let name = decoded(raw_name)?;
        let value = decoded(raw_value)?;
        if let Some(first) = params.get(&name) {
            return Err(UriError::Parameter {
                uri: uri.to_owned(),
                expected: format!("the parameter once (it was given before as `{first}`)"),
                name,
                value,
            });
        }
        params.insert(name, value);
    }
    Ok(params)
}

/// Parses the part of an ssh URI between `://` and `?`.
fn parse_ssh(
    uri: &str,
    protocol: RemoteProtocol,
    rest: &str,
    query: &str,
) -> Result<StoreUri, UriError> {
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if !path.is_empty() {
        return Err(UriError::Path {
            uri: uri.to_owned(),
            path: path.to_owned(),
            expected: "nothing after the host (an ssh store has no path; use `remote-store=` for the remote store)",
        });
    }
    let (user, hostport) = match authority.split_once('@') {
        Some((user, hostport)) => (Some(parse_user(uri, user)?), hostport),
        None => (None, authority),
    };
    let (host, port) = parse_host_port(uri, hostport)?;
    Ok(StoreUri::Ssh(SshStore {
        protocol,
        user,
        host,
        port,
        params: SshParams::from_params(uri, parse_query(uri, query)?)?,
    }))
}

fn parse_user(uri: &str, raw: &str) -> Result<String, UriError> {
    let bad = |expected| UriError::User {
        uri: uri.to_owned(),
        user: raw.to_owned(),
        expected,
    };
    if raw.is_empty() {
        return Err(bad("a user name before `@`"));
    }
    if raw.contains(':') {
        return Err(bad(
            "a user name without `:` (no password: ssh stores authenticate with keys)",
        ));
    }
    let user = percent_decode(raw)
        .ok_or_else(|| bad("`%` followed by two hex digits, decoding to UTF-8 text"))?;
    if user.starts_with('-') {
        return Err(bad(
            "a user name not starting with `-` (ssh would read it as an option)",
        ));
    }
    if user
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '@')
    {
        return Err(bad("a user name without spaces, control characters or `@`"));
    }
    Ok(user)
}

const HOST_EXPECTED: &str =
    "a host name of letters, digits, `.`, `-` and `_`, or an IPv6 address in brackets";

fn parse_host_port(uri: &str, raw: &str) -> Result<(String, Option<u16>), UriError> {
    let bad_host = |host: &str, expected| UriError::Host {
        uri: uri.to_owned(),
        host: host.to_owned(),
        expected,
    };
    if let Some(inner) = raw.strip_prefix('[') {
        let Some((address, after)) = inner.split_once(']') else {
            return Err(bad_host(raw, "a `]` closing the IPv6 address"));
        };
        let host = parse_ipv6(address).ok_or_else(|| {
            bad_host(
                &raw[..address.len() + 2],
                "an IPv6 address between the brackets, such as `[::1]` or `[fe80::1%25eth0]`",
            )
        })?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(parse_port(uri, port)?),
                None => return Err(bad_host(raw, "`:PORT` or nothing after `]`")),
            },
        };
        return Ok((host, port));
    }
    if raw.matches(':').count() > 1 {
        // Older Nix took an unbracketed IPv6 address (then without a port).
        return parse_ipv6(raw).map(|host| (host, None)).ok_or_else(|| {
            bad_host(
                raw,
                "an IPv6 address in brackets, as in `[::1]:2222` (one `:` separates host and port)",
            )
        });
    }
    let (host, port) = match raw.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(uri, port)?)),
        None => (raw, None),
    };
    if host.is_empty() {
        return Err(bad_host(host, HOST_EXPECTED));
    }
    if host.starts_with('-') {
        return Err(bad_host(
            host,
            "a host name not starting with `-` (ssh would read it as an option)",
        ));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    {
        return Err(bad_host(host, HOST_EXPECTED));
    }
    Ok((host.to_owned(), port))
}

/// An IPv6 address with an optional zone (`%25zone` as URIs write it, or a
/// bare `%zone` as older Nix took it), as `address%zone`.
fn parse_ipv6(text: &str) -> Option<String> {
    let (address, zone) = match text.split_once('%') {
        Some((address, zone)) => {
            let zone = zone.strip_prefix("25").unwrap_or(zone);
            let zone_ok = !zone.is_empty()
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
            if !zone_ok {
                return None;
            }
            (address, Some(zone))
        }
        None => (text, None),
    };
    address.parse::<Ipv6Addr>().ok()?;
    Some(match zone {
        Some(zone) => format!("{address}%{zone}"),
        None => address.to_owned(),
    })
}

fn parse_port(uri: &str, raw: &str) -> Result<u16, UriError> {
    let bad = |expected| UriError::Port {
        uri: uri.to_owned(),
        port: raw.to_owned(),
        expected,
    };
    if raw.is_empty() {
        return Err(bad("a port number after `:`"));
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("a decimal port number"));
    }
    match parse_decimal::<u16>(raw) {
        Some(port) if port > 0 => Ok(port),
        _ => Err(bad("a port from 1 to 65535")),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is
/// not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes `text` with every byte outside `keep` as `%XX`.
fn percent_encode(text: &str, keep: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986's unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Left bare in a parameter name or value: everything that cannot end the
/// value (`&`, `=`, `#`) or be read as an escape (`%`).
fn is_query_char(b: u8) -> bool {
    is_unreserved(b) || b"!$'()*+,;:@/".contains(&b)
}

/// Left bare in a path: as in a query, plus `&` and `=`.
fn is_path_char(b: u8) -> bool {
    is_query_char(b) || b"&=".contains(&b)
}

/// Left bare in a user name (`:` and `@` would end it).
fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=".contains(&b)
}

/// Writes `?name=value&…`, or nothing for no parameters.
fn write_query(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (i, (name, value)) in params.iter().enumerate() {
        f.write_str(if i == 0 { "?" } else { "&" })?;
        write!(
            f,
            "{}={}",
            percent_encode(name, is_query_char),
            percent_encode(value, is_query_char)
        )?;
    }
    Ok(())
}

/// Whether a local store root can be written as a bare path: one that
/// reads back as the same path.
fn bare_root(root: &Path) -> Option<&str> {
    let text = root.to_str()?;
    (text.contains('/') && !text.contains("://") && !text.contains('?')).then_some(text)
}

impl fmt::Display for StoreUri {
    /// Writes the URI so that parsing it gives this value again (for every
    /// value parsing can give; a hand-built one with, say, a relative
    /// socket path writes a URI that parsing refuses). Paths that are not
    /// UTF-8 are written lossily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ssh(ssh) => write!(f, "{ssh}"),
            Self::Unix { path, params } => {
                let path = path.to_string_lossy();
                write!(f, "unix://{}", percent_encode(&path, is_path_char))?;
                write_query(f, params)
            }
            Self::Daemon { params } => {
                f.write_str("daemon")?;
                write_query(f, params)
            }
            Self::Local { root, params } => match root.as_deref() {
                None => {
                    f.write_str("local")?;
                    write_query(f, params)
                }
                Some(root) => match bare_root(root) {
                    Some(text) => {
                        f.write_str(text)?;
                        write_query(f, params)
                    }
                    None => {
                        let mut params = params.clone();
                        params.insert("root".into(), root.to_string_lossy().into_owned());
                        f.write_str("local")?;
                        write_query(f, &params)
                    }
                },
            },
            Self::Auto { params } => {
                f.write_str("auto")?;
                write_query(f, params)
            }
        }
    }
}

impl fmt::Display for SshStore {
    /// `ssh://` or `ssh-ng://`, the authority, then the parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol.scheme(), self.authority())?;
        write_query(f, &self.params.to_params())
    }
}

#[cfg(feature = "machines")]
impl StoreUri {
    /// The store a machines entry names, completed with its columns as Nix
    /// completes it before opening the store.
    ///
    /// The URI is [`normalize_uri`](crate::machines::normalize_uri)d first
    /// (a bare host name means `ssh://host`; the machines parser has done
    /// so already, a hand-built [`Machine`](crate::machines::Machine) may
    /// not have). For `ssh://` and `ssh-ng://` stores, column 3 (ssh key)
    /// sets `ssh-key` and column 8 (host key) sets
    /// `base64-ssh-public-host-key`, **replacing** what the URI's own
    /// parameters said: Nix 2.8 passes the columns as the store's starting
    /// parameters, to which the URI's are added without replacing any, and
    /// newer Nix assigns the columns over the URI's parameters; either way
    /// the columns win.
    ///
    /// Left out, being Nix's build hook's business rather than the
    /// connection's: `max-connections=1` and `log-fd=4`, which Nix adds for
    /// `ssh://`, and `system-features`, which Nix fills from the feature
    /// columns (still on the machine).
    pub fn from_machine(machine: &crate::machines::Machine) -> Result<Self, UriError> {
        let uri = crate::machines::normalize_uri(&machine.uri);
        let mut store: Self = uri.parse()?;
        if let Self::Ssh(ssh) = &mut store {
            if let Some(key) = machine.ssh_key.as_deref().filter(|k| !k.is_empty()) {
                ssh.params.ssh_key = Some(PathBuf::from(key));
            }
            if let Some(key) = machine
                .ssh_public_host_key
                .as_deref()
                .filter(|k| !k.is_empty())
            {
                ssh.params.host_key =
                    Some(
                        HostKey::from_base64(key).map_err(|problem| UriError::HostKey {
                            uri: uri.clone(),
                            from: "machines column 8 (ssh public host key)".to_owned(),
                            problem,
                        })?,
                    );
            }
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        for text in ["", "a b", "100%", "é&=?#", "/nix/store"] {
            let encoded = percent_encode(text, is_query_char);
            assert_eq!(percent_decode(&encoded).as_deref(), Some(text));
        }
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn ipv6_zones() {
        assert_eq!(
            parse_ipv6("fe80::1%25eth0").as_deref(),
            Some("fe80::1%eth0")
        );
        assert_eq!(parse_ipv6("fe80::1%eth0").as_deref(), Some("fe80::1%eth0"));
        assert_eq!(parse_ipv6("fe80::1%"), None);
        assert_eq!(parse_ipv6("host"), None);
    }
}
