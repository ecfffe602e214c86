//! The fault injector's settings: what the tests write and what
//! `nixwire-fault` (this crate's binary) reads.
//!
//! `nixwire-fault` stands in for the remote program of an `ssh://` or
//! `ssh-ng://` store (`remote-program=/path/nixwire-fault CONFIG nix-store`):
//! the client runs `nixwire-fault CONFIG nix-store --serve --write --store
//! X` on the remote side, and the injector starts the real server
//! (`nix-store --serve --write --store X`), pumps the bytes between the ssh
//! channel and it, and breaks that stream as [`Fault`] says: kills the
//! server after some bytes, truncates a direction, stops the server and the
//! pumps, slows every chunk, prints a banner before the server speaks or
//! floods stderr. It writes a marker file when it starts (proof that a
//! refused connection never reached it) and the moment of the fault (so a
//! test can measure how long the client took to notice).
//!
//! The file is `key=value` lines, see [`Fault::to_config`].

use std::path::PathBuf;
use std::time::Duration;

/// Which way a fault counts bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (the injector's stdin to the server's stdin): a
    /// copy *to* the remote store.
    ToServer,
    /// Server to client: a copy *from* the remote store.
    ToClient,
}

/// What happens when the byte count is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: bytes pass (with [`Fault::delay`], a slow link).
    None,
    /// SIGKILL the server; what it wrote before goes on, then EOF.
    Kill,
    /// Forward exactly the count, then close that direction: towards the
    /// server its stdin is closed (later bytes are dropped), towards the
    /// client the injector exits (the ssh channel closes).
    Truncate,
    /// SIGSTOP the server and stop forwarding both ways; the injector
    /// reads on (and drops) what the client sends and ends, killing the
    /// server, when the client goes away (or after two minutes).
    Stop,
}

/// One fault, for one connection.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The byte direction counted.
    pub direction: Direction,
    /// After how many bytes of that direction the action happens.
    pub after: u64,
    /// The action.
    pub action: Action,
    /// A pause before forwarding each chunk, both ways.
    pub delay: Duration,
    /// The largest chunk forwarded at once.
    pub chunk: usize,
    /// Printed on stdout before the server starts (a login banner).
    pub banner: Option<String>,
    /// This many bytes of text written to stderr before anything of the
    /// server's stdout is forwarded.
    pub stderr_flood: u64,
    /// Created (with the injector's arguments) when the injector starts.
    pub marker: Option<PathBuf>,
    /// Where the moment of the fault is written (nanoseconds since the
    /// Unix epoch), when it happens.
    pub record: Option<PathBuf>,
}

impl Default for Fault {
    fn default() -> Self {
        Self {
            direction: Direction::ToClient,
            after: 0,
            action: Action::None,
            delay: Duration::ZERO,
            chunk: 64 * 1024,
            banner: None,
            stderr_flood: 0,
            marker: None,
            record: None,
        }
    }
}

/// A config file that does not parse.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nixwire-fault config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Fault {
    /// The config file's text. A banner's newlines are written `\n`.
    pub fn to_config(&self) -> String {
        let mut out = String::new();
        let direction = match self.direction {
            Direction::ToServer => "to-server",
            Direction::ToClient => "to-client",
        };
        let action = match self.action {
            Action::None => "none",
            Action::Kill => "kill",
            Action::Truncate => "truncate",
            Action::Stop => "stop",
        };
        out.push_str(&format!("direction={direction}\naction={action}\n"));
        out.push_str(&format!("after={}\n", self.after));
        out.push_str(&format!("delay_ms={}\n", self.delay.as_millis()));
        out.push_str(&format!("chunk={}\n", self.chunk));
        out.push_str(&format!("stderr_flood={}\n", self.stderr_flood));
        if let Some(b) = &self.banner {
            out.push_str(&format!("banner={}\n", b.replace('\n', "\\n")));
        }
        if let Some(m) = &self.marker {
            out.push_str(&format!("marker={}\n", m.display()));
        }
        if let Some(r) = &self.record {
            out.push_str(&format!("record={}\n", r.display()));
        }
        out
    }

    /// Reads a config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut fault = Self::default();
        let number = |key: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|e| ConfigError(format!("{key}={v}: {e}")))
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("no `=` in {line:?}")))?;
            match key {
                "direction" => {
                    fault.direction = match value {
                        "to-server" => Direction::ToServer,
                        "to-client" => Direction::ToClient,
                        _ => return Err(ConfigError(format!("direction {value:?}"))),
                    }
                }
                "action" => {
                    fault.action = match value {
                        "none" => Action::None,
                        "kill" => Action::Kill,
                        "truncate" => Action::Truncate,
                        "stop" => Action::Stop,
                        _ => return Err(ConfigError(format!("action {value:?}"))),
                    }
                }
                "after" => fault.after = number(key, value)?,
                "delay_ms" => fault.delay = Duration::from_millis(number(key, value)?),
                "chunk" => {
                    fault.chunk = usize::try_from(number(key, value)?)
                        .unwrap_or(usize::MAX)
                        .clamp(1, 1 << 20)
                }
                "stderr_flood" => fault.stderr_flood = number(key, value)?,
                "banner" => fault.banner = Some(value.replace("\\n", "\n")),
                "marker" => fault.marker = Some(PathBuf::from(value)),
                "record" => fault.record = Some(PathBuf::from(value)),
                _ => return Err(ConfigError(format!("unknown key {key:?}"))),
            }
        }
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_reads_back_as_written() {
        let fault = Fault {
            direction: Direction::ToServer,
            after: 12345,
            action: Action::Stop,
            delay: Duration::from_millis(5),
            chunk: 4096,
            banner: Some("hello\nworld".into()),
            stderr_flood: 7,
            marker: Some("/tmp/m".into()),
            record: Some("/tmp/r".into()),
        };
        let back = Fault::parse(&fault.to_config()).expect("parses");
        assert_eq!(back.to_config(), fault.to_config());
        assert_eq!(back.banner.as_deref(), Some("hello\nworld"));
        assert!(Fault::parse("action=explode").is_err());
        assert!(Fault::parse("after").is_err());
    }
}
