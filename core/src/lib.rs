//! # nixwire-core
//!
//! The sans-IO core of nixwire: Nix's remote-building protocols as pure state
//! machines. Bytes go in, bytes and events come out; this crate never opens a
//! socket, spawns a process, starts a thread, reads the clock or awaits.
//! Runtimes (tokio, smol, blocking) own the I/O and drive these machines; so
//! do the tests and the conformance suite, which is why all of them agree.
//!
//! - [`wire`]: the wire format's primitives and the [`wire_message!`] macro
//!   that declares each message once, with its version gates, and derives both
//!   encoding and decoding from that one declaration.
//! - [`nar`]: [`NarFramer`](nar::NarFramer), which finds where a NAR ends as
//!   its bytes stream past, in bounded memory.
//! - [`serve`]: the serve protocol (`nix-store --serve`, `ssh://` stores):
//!   its messages, and a [`Client`](serve::Client) and a
//!   [`Server`](serve::Server) of the same shape.
//! - `machines` (cargo feature `machines`, on by default): machines files
//!   (Nix's line format and Lix's TOML) and machine selection.
//!
//! # The run loop
//!
//! Every connection has the same three kinds of call, after quinn-proto:
//! `handle_*` gives it what happened (bytes from the peer's stdout, bytes from
//! its stderr, end of file, a deadline reached), `poll_*` takes out what it
//! wants done (bytes to send, events, the next deadline), and ordinary methods
//! make requests. Time is always an argument.
//!
//! A driver must follow this loop (the contract, after str0m):
//! 1. After **any** call that changes the connection (`new`, `request`,
//!    `write_nar`, `handle_*`), drain [`poll_transmit`](serve::Client::poll_transmit)
//!    and write those bytes to the peer, then drain
//!    [`poll_event`](serve::Client::poll_event) until it returns `None`.
//! 2. Handle every event: a [`SendNar`](serve::ClientEvent::SendNar) asks for a
//!    request's NAR body through `write_nar` (back to step 1); a `Reply` ends a
//!    request; `NarChunk`s and `Log`s are streams to pass on, not to collect.
//! 3. Wait for whichever comes first: bytes on the peer's stdout
//!    ([`handle_input`](serve::Client::handle_input)), bytes on its stderr
//!    ([`handle_stderr`](serve::Client::handle_stderr)), end of file
//!    ([`handle_eof`](serve::Client::handle_eof)), or the instant from
//!    [`poll_timeout`](serve::Client::poll_timeout)
//!    ([`handle_timeout`](serve::Client::handle_timeout)). Read stdout and
//!    stderr concurrently: a server blocked on a full stderr pipe stops
//!    answering on stdout.
//! 4. Go to step 1. An error from any call poisons the connection: every later
//!    call returns it again, and the driver should close the transport.
//!
//! "Need more bytes" is not an error: `handle_input` may simply buffer.
//!
//! This example runs the loop between the core's client and the core's server,
//! in memory. A runtime does the same with a pipe or an ssh channel in between.
//!
//! ```
//! use std::time::Instant;
//! use nixwire_core::serve::messages::QueryValidPaths;
//! use nixwire_core::serve::{
//!     Client, ClientConfig, ClientEvent, Reply, Request, Server, ServerConfig, ServerEvent,
//! };
//!
//! # fn main() -> Result<(), nixwire_core::serve::Error> {
//! let now = Instant::now();
//! let mut client = Client::new(ClientConfig::default(), now);
//! let mut server = Server::new(ServerConfig::default());
//!
//! let path = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12".to_owned();
//! let id = client.request(Request::QueryValidPaths(QueryValidPaths {
//!     lock: false,
//!     substitute: false,
//!     paths: vec![path.clone()],
//! }))?;
//!
//! let mut wire = Vec::new();
//! let valid = 'run: loop {
//!     // 1. The client's bytes go to the server ...
//!     client.poll_transmit(&mut wire);
//!     server.handle_input(&wire)?;
//!     wire.clear();
//!     // ... whose host answers what it was asked ...
//!     while let Some(event) = server.poll_event() {
//!         if let ServerEvent::Request { id, request: Request::QueryValidPaths(q) } = event {
//!             server.reply(id, &Reply::QueryValidPaths(q.paths))?;
//!         }
//!     }
//!     // ... and the server's bytes come back.
//!     server.poll_transmit(&mut wire);
//!     client.handle_input(now, &wire)?;
//!     wire.clear();
//!     // 2. Events.
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             ClientEvent::Connected { version, .. } => assert_eq!(version.to_string(), "2.8"),
//!             ClientEvent::Reply { id: done, reply: Reply::QueryValidPaths(valid) } if done == id => {
//!                 break 'run valid;
//!             }
//!             _ => {}
//!         }
//!     }
//! };
//! assert_eq!(valid, vec![path]);
//! # Ok(())
//! # }
//! ```
//!
//! Against a real `nix-store --serve --write` the loop is the same with a
//! child process in between (this is what the blocking runtime does; the
//! conformance crate's tests run it against Debian's Nix):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::process::{Command, Stdio};
//! use std::time::Instant;
//! use nixwire_core::serve::{Client, ClientConfig, ClientEvent, Request, messages::QueryValidPaths};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut child = Command::new("nix-store")
//!     .args(["--serve", "--write"])
//!     .stdin(Stdio::piped())
//!     .stdout(Stdio::piped())
//!     .stderr(Stdio::inherit()) // a real driver reads it and calls handle_stderr
//!     .spawn()?;
//! let (mut to, mut from) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
//! let mut conn = Client::new(ClientConfig::default(), Instant::now());
//! let id = conn.request(Request::QueryValidPaths(QueryValidPaths::default()))?;
//! let (mut out, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
//! loop {
//!     conn.poll_transmit(&mut out);
//!     to.write_all(&out)?;
//!     out.clear();
//!     while let Some(event) = conn.poll_event() {
//!         if let ClientEvent::Reply { id: done, reply } = event {
//!             if done == id {
//!                 println!("{reply:?}");
//!                 return Ok(());
//!             }
//!         }
//!     }
//!     let n = from.read(&mut buf)?;
//!     if n == 0 {
//!         conn.handle_eof(Instant::now())?;
//!     } else {
//!         conn.handle_input(Instant::now(), &buf[..n])?;
//!     }
//! }
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Behind a feature so that hosts wanting only the protocols do not pull in
// the TOML and serde dependencies machines files need.
#[cfg(feature = "machines")]
pub mod machines;
pub mod nar;
pub mod serve;
pub mod wire;
