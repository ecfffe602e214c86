//! # nixwire-smol
//!
//! nixwire on smol: Nix's remote-building protocols over a child process
//! ([`Transport::spawn`]), ssh ([`Transport::ssh`]) and a daemon's unix
//! socket ([`Transport::unix`]).
//!
//! ssh is the system's `ssh`, run (through `async-process`) with the argv
//! the core computes ([`nixwire_core::ssh::invocation_for`]): the user's
//! ssh configuration applies to everything nixwire does not set itself (a
//! host alias, a jump host, a key), while nixwire's own options (no
//! terminal, no prompts, timeouts and keepalives, no shared ControlMaster,
//! a pinned host key in a private known_hosts file) come first and win.
//! Reading `NIX_SSHOPTS` is the host's business: split it with
//! [`nixwire_core::ssh::split_sshopts`] into `options.ssh.extra`.
//!
//! This crate owns I/O and nothing else. What to send, how a URI is
//! reached, the ssh argv, the errors and the mapping of every operation to
//! the serve or the worker protocol are `nixwire-core`'s; the same API
//! exists in `nixwire-tokio` and `nixwire-blocking` (see
//! `runtimes/README.md`), so a host changes runtimes by changing an import.
//!
//! - [`Driver`] runs any [`Connection`](nixwire_core::conn::Connection) over
//!   a [`Transport`]: stdout and stderr always read concurrently (a serve
//!   server blocks forever on a full stderr pipe: NixOS/nix#16437), writes
//!   concurrent with reads, the connection's deadlines, a [`Canceller`].
//! - [`Store`] is a driver of a [`Session`](nixwire_core::session::Session)
//!   with a method per operation, NARs streamed through `futures-io`'s
//!   `AsyncRead`/`AsyncWrite`, many requests in flight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nixwire_core::runtime::Error> {
//! use nixwire_core::runtime::Options;
//! let mut store = nixwire_smol::Store::open("ssh-ng://builder", &Options::default()).await?;
//! println!("{:?}", store.info());
//! let valid = store.query_valid_paths(&[]).await?;
//! store.close().await?;
//! # let _ = valid; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod driver;
mod store;
mod transport;

pub use driver::{Canceller, Driver};
pub use nixwire_core::runtime::{Error, Options, Plan};
pub use store::Store;
pub use transport::Transport;
