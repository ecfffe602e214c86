//! # nixwire-blocking
//!
//! nixwire on std I/O and threads, without async: Nix's remote-building
//! protocols over a child process ([`Transport::spawn`]), ssh in-process
//! through libssh2 ([`Transport::ssh`], the `ssh2` crate) and a daemon's
//! unix socket ([`Transport::unix`]).
//!
//! This crate owns I/O and nothing else. What to send, how a URI is
//! reached, the errors and the mapping of every operation to the serve or
//! the worker protocol are `nixwire-core`'s; the same API exists in
//! `nixwire-tokio` and `nixwire-smol` (see `runtimes/README.md`), with plain
//! `fn`s here where they have `async fn`s.
//!
//! - [`Driver`] runs any [`Connection`](nixwire_core::conn::Connection) over
//!   a [`Transport`]. Everything it waits for arrives on one channel, waited
//!   on until the connection's next deadline: threads read stdout and
//!   stderr concurrently (a serve server blocks forever on a full stderr
//!   pipe: NixOS/nix#16437), a writer thread writes with at most 1 MiB in
//!   flight (a slow peer holds the connection back, memory does not grow
//!   with a NAR), and a [`Canceller`] used from another thread wakes it at
//!   once.
//! - [`Store`] is a driver of a [`Session`](nixwire_core::session::Session)
//!   with a method per operation, NARs streamed through
//!   `std::io::Read`/`Write`, many requests in flight.
//!
//! ## ssh
//!
//! The ssh client is libssh2, in this process; one thread owns the
//! session. It takes from the store URI and [`Options`] only:
//!
//! - the host, the port (22 unless the URI gives one) and the user (the
//!   URI's, else `$USER` or `$LOGNAME`);
//! - the login: `ssh-key` if given, else the keys of the ssh agent;
//! - the host key: with `base64-ssh-public-host-key` (a machines file's
//!   8th column) the server's key must be exactly that one; without it, it
//!   must be the key `~/.ssh/known_hosts` or `/etc/ssh/ssh_known_hosts` has
//!   for the host (`[host]:port` for another port). Anything else is
//!   refused before any protocol byte, with an [`Error::Connect`] naming
//!   the host and the reason; nothing is asked and no key is learned;
//! - `compress`, [`Options::connect_timeout`] (connecting, the ssh
//!   handshake, the login and starting the command together),
//!   `options.ssh.connect_timeout` (each TCP connection attempt), and
//!   `options.ssh.server_alive_interval` and `server_alive_count_max`
//!   (keepalives; a server silent for interval × (count + 1) is taken for
//!   dead and the connection ends).
//!
//! It reads **no ssh configuration files**: no `~/.ssh/config`, no
//! `/etc/ssh/ssh_config`, no `NIX_SSHOPTS` (nor `options.ssh.extra`). Hosts
//! that need those (a `ProxyJump`, a `HostName` alias, an `IdentityFile`
//! from the config, certificates) need `nixwire-tokio` or `nixwire-smol`,
//! which run the system's ssh. No agent or X11 forwarding, no terminal,
//! no shared connections: each store is its own ssh connection.
//!
//! ```no_run
//! # fn demo() -> Result<(), nixwire_core::runtime::Error> {
//! use nixwire_core::runtime::Options;
//! let mut store = nixwire_blocking::Store::open("ssh-ng://builder", &Options::default())?;
//! println!("{:?}", store.info());
//! let valid = store.query_valid_paths(&[])?;
//! store.close()?;
//! # let _ = valid; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod driver;
mod ssh;
mod store;
mod transport;

pub use driver::{Canceller, Driver};
pub use nixwire_core::runtime::{Error, Options, Plan};
pub use store::Store;
pub use transport::Transport;
