//! A store over any transport: a [`Driver`] of a
//! [`Session`](nixwire_core::session::Session), with an async method per
//! operation. The code is shared with the other async runtime
//! (`runtimes/common/async_store.rs`); only the I/O traits are this crate's.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

include!("../../common/async_store.rs");
