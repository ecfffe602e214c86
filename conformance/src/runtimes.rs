//! The client role through each runtime and a real transport to
//! `nixwire-replay`.

use std::path::Path;

use nixwire_core::conn::Connection;

use crate::link::{Driven, Handler, Link, Tap};

pub(crate) fn tokio<C: Connection>(
    _link: &Link,
    _path: &Path,
    _conn: Tap<C>,
    _handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    Err("the tokio runtime is not built into this conformance binary".into())
}

pub(crate) fn smol<C: Connection>(
    _link: &Link,
    _path: &Path,
    _conn: Tap<C>,
    _handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    Err("the smol runtime is not built into this conformance binary".into())
}

pub(crate) fn blocking<C: Connection>(
    _link: &Link,
    _path: &Path,
    _conn: Tap<C>,
    _handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    Err("the blocking runtime is not built into this conformance binary".into())
}
