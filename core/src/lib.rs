//! # nixwire-core
//!
//! The sans-IO core of nixwire: Nix's remote-building protocols as pure state
//! machines. Bytes go in, bytes and events come out; this crate never opens a
//! socket, spawns a process, starts a thread, reads the clock or awaits.
//! Runtimes (tokio, smol, blocking) own the I/O and drive these machines; so
//! do the tests and the conformance suite, which is why all of them agree.
//!
//! Bottom to top:
//! - [`wire`]: the wire format: Nix's strings as bytes ([`NixString`](wire::NixString)),
//!   layouts typed by protocol, resumable decoding bounded by
//!   [`Limits`](wire::Limits), and the [`wire_message!`] and [`wire_layout!`]
//!   declarations from which both directions of a message come.
//! - [`store`]: the domain types, validated once and shared by both
//!   protocols: [`StorePath`](store::StorePath), [`StoreDir`](store::StoreDir),
//!   hashes, signatures, content addresses, path infos, build results.
//! - [`nar`]: [`NarFramer`](nar::NarFramer), which finds where a NAR ends as
//!   its bytes stream past, in bounded memory, and refuses what Nix's own NAR
//!   parser refuses (within [`NarLimits`](nar::NarLimits)).
//! - [`conn`]: what every connection shares: the [`Connection`](conn::Connection)
//!   contract, errors and their classes, request ids, outgoing bytes as a
//!   queue of `Bytes`, and the operation tables' body and reply kinds.
//! - [`serve`]: the serve protocol (`nix-store --serve`, `ssh://` stores):
//!   its operation table and messages, and a [`Client`](serve::Client) and a
//!   [`Server`](serve::Server) of the same shape.
//! - [`worker`]: the worker protocol (`nix-daemon`, `unix://` and
//!   `ssh-ng://` stores): its operation table and messages, every field
//!   gated by the negotiated version and features.
//! - [`uri`]: store URIs as Nix spells them (`ssh://`, `ssh-ng://`,
//!   `unix://`, `daemon`, `local`, `auto`, paths), parsed into
//!   [`StoreUri`](uri::StoreUri) and written back, with the ssh stores'
//!   parameters typed and a pinned [`HostKey`](uri::HostKey) checked.
//! - [`ssh`]: what to run for an ssh store: the remote command, quoted for
//!   the remote shell, and the whole `ssh` argv with the known_hosts text
//!   for a pinned key ([`ssh::invocation`]); `NIX_SSHOPTS` split as words.
//! - [`session`]: one store connection whichever the protocol: the
//!   operations a remote-building host needs, mapped once to each
//!   protocol's messages, so that runtimes never know which they drive.
//! - [`runtime`]: what every runtime shares: how a URI is reached
//!   ([`Plan`](runtime::Plan)), the host's options, the one error type.
//! - [`flows`]: jobs across stores as explicit state machines above the
//!   session: [`flows::copy`] plans a closure copy (which infos to ask the
//!   source for, one batched validity query to the destination, the missing
//!   paths in topological order) and checks each NAR as it streams.
//! - [`pair`]: two connections joined in memory with a virtual clock, for
//!   tests and examples.
//! - `machines` (cargo feature `machines`, on by default): machines files
//!   (Nix's line format and Lix's TOML) and machine selection.
//!
//! # The run loop
//!
//! Every connection implements [`Connection`](conn::Connection), with the
//! same three kinds of call, after quinn-proto: `handle_*` gives it what
//! happened (bytes from the peer's stdout, bytes from its stderr, end of
//! file, a deadline reached), `poll_*` takes out what it wants done (bytes to
//! send, events, the next deadline), and ordinary methods make requests and
//! offer bodies. Time is always an argument.
//!
//! A driver follows this loop (the contract, after str0m):
//! 1. After **any** call that changes the connection (`new`, `request`,
//!    `offer_body`, `handle_*`), drain `poll_transmit` and write those bytes
//!    to the peer, then drain `poll_event` until it returns `None`.
//! 2. Handle every event: a `BodyWanted` asks for a request's body, which
//!    the driver offers with `offer_body` (back to step 1); a `Reply` ends a
//!    request, a `Failed` too (the remote refused it; the connection goes
//!    on); `NarChunk`s and `Log`s are streams to pass on, not to collect; a
//!    `Broken` means the connection is over.
//! 3. Wait for whichever comes first: bytes on the peer's stdout
//!    (`handle_input`), bytes on its stderr (`handle_stderr`), end of file
//!    (`handle_eof`), or the instant from `poll_timeout` (`handle_timeout`).
//!    Read stdout and stderr concurrently: a server blocked on a full stderr
//!    pipe stops answering on stdout.
//! 4. Go to step 1.
//!
//! "Need more bytes" is not an error: `handle_input` may simply buffer. A
//! caller's mistake is returned and changes nothing; a broken connection is
//! reported once as a `Broken` event and every later call returns its error
//! (see [`conn`] for the three kinds of error).
//!
//! This example runs the loop between the core's client and the core's
//! server, in memory. A runtime does the same with a pipe or an ssh channel
//! in between.
//!
//! ```
//! use std::time::Instant;
//! use nixwire_core::conn::Connection;
//! use nixwire_core::serve::messages::QueryValidPaths;
//! use nixwire_core::serve::{
//!     Client, ClientConfig, ClientEvent, Reply, Request, Server, ServerConfig, ServerEvent,
//! };
//! use nixwire_core::store::StorePath;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let mut client = Client::new(ClientConfig::default(), now);
//! let mut server = Server::new(ServerConfig::default(), now);
//!
//! let path: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12".parse()?;
//! let id = client.request(now, QueryValidPaths {
//!     lock: false,
//!     substitute: false,
//!     paths: vec![path.clone()],
//! })?;
//!
//! let valid = 'run: loop {
//!     // 1. The client's bytes go to the server ...
//!     while let Some(bytes) = client.poll_transmit() {
//!         server.handle_input(now, bytes)?;
//!     }
//!     // ... whose host answers what it was asked ...
//!     while let Some(event) = server.poll_event() {
//!         if let ServerEvent::Request { id, request: Request::QueryValidPaths(q) } = event {
//!             server.reply(id, &Reply::QueryValidPaths(q.paths))?;
//!         }
//!     }
//!     // ... and the server's bytes come back.
//!     while let Some(bytes) = server.poll_transmit() {
//!         client.handle_input(now, bytes)?;
//!     }
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
//! child process in between (the conformance crate's tests run it against
//! Debian's Nix, reading stderr on a thread of its own):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::process::{Command, Stdio};
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use nixwire_core::conn::Connection;
//! use nixwire_core::serve::{Client, ClientConfig, ClientEvent, messages::QueryValidPaths};
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
//! let id = conn.request(Instant::now(), QueryValidPaths::default())?;
//! loop {
//!     while let Some(bytes) = conn.poll_transmit() {
//!         to.write_all(&bytes)?;
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         if let ClientEvent::Reply { id: done, reply } = event {
//!             if done == id {
//!                 println!("{reply:?}");
//!                 return Ok(());
//!             }
//!         }
//!     }
//!     // Reading into a buffer of our own and handing it over whole lets the
//!     // core keep slices of it (NAR chunks) without copying.
//!     let mut buf = BytesMut::zeroed(64 * 1024);
//!     let n = from.read(&mut buf)?;
//!     if n == 0 {
//!         conn.handle_eof(Instant::now())?;
//!     } else {
//!         buf.truncate(n);
//!         conn.handle_input(Instant::now(), buf.freeze())?;
//!     }
//! }
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conn;
pub mod flows;
// Behind a feature so that hosts wanting only the protocols do not pull in
// the TOML parser machines files need.
#[cfg(feature = "machines")]
pub mod machines;
pub mod nar;
pub mod pair;
pub mod runtime;
pub mod serve;
pub mod session;
pub mod ssh;
pub mod store;
pub mod uri;
pub mod wire;
pub mod worker;
