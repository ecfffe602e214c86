//! # nixwire-tokio
//!
//! nixwire on tokio: Nix's remote-building protocols over a child process
//! ([`Transport::spawn`]), ssh ([`Transport::ssh`], through the `openssh`
//! crate with a ControlMaster of its own in a private directory) and a
//! daemon's unix socket ([`Transport::unix`]).
//!
//! This crate owns I/O and nothing else. What to send, how a URI is
//! reached, the ssh options, the errors and the mapping of every operation
//! to the serve or the worker protocol are `nixwire-core`'s; the same API
//! exists in `nixwire-smol` and `nixwire-blocking` (see `runtimes/README.md`).
//!
//! - [`Driver`] runs any [`Connection`](nixwire_core::conn::Connection) over
//!   a [`Transport`]: stdout and stderr always read concurrently (a serve
//!   server blocks forever on a full stderr pipe: NixOS/nix#16437), writes
//!   concurrent with reads, the connection's deadlines, a [`Canceller`].
//! - [`Store`] is a driver of a [`Session`](nixwire_core::session::Session)
//!   with a method per operation, NARs streamed through
//!   `AsyncRead`/`AsyncWrite`, many requests in flight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nixwire_core::runtime::Error> {
//! use nixwire_core::runtime::Options;
//! let mut store = nixwire_tokio::Store::open("ssh-ng://builder", &Options::default()).await?;
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
