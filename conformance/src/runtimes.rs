//! The client role through each runtime and a real transport to
//! `nixwire-replay`.

use std::path::Path;

use nixwire_core::conn::Connection;

use std::ops::ControlFlow;
use std::time::Duration;

use nixwire_core::runtime::{Error, Options};
use nixwire_core::uri::{HostKey, RemoteProtocol, SshStore};

use crate::link::{Driven, Handler, Link, Tap};

/// How long the replay may take to end once the client has.
const GRACE: Duration = Duration::from_secs(20);

/// The replay of the transcript at `path`: program and arguments.
fn replay_command(link: &Link, path: &Path) -> Vec<String> {
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    vec![absolute(&link.replay), absolute(path)]
}

/// The sshd to run the replay through, for the ssh transport.
fn ssh_target(link: &Link) -> Result<Option<SshStore>, String> {
    let Some(target) = link
        .ssh
        .as_ref()
        .filter(|_| link.transport == crate::link::Transport::Ssh)
    else {
        return Ok(None);
    };
    // The protocol only names the default remote program, which the replay
    // replaces.
    let mut store = SshStore::new(RemoteProtocol::Serve, target.host.clone());
    store.port = Some(target.port);
    store.user = target.user.clone();
    store.params.ssh_key = target.key.clone();
    if let Some(key) = &target.host_key {
        let key = HostKey::from_base64(key).map_err(|e| format!("--ssh-host-key: {e}"))?;
        store.params.host_key = Some(key);
    }
    Ok(Some(store))
}

/// The runtimes' options for a replay: the defaults.
fn options() -> Options {
    Options::default()
}

/// One event to the client role's handler, inside a runtime's run.
fn step<C: Connection>(
    conn: &mut C,
    event: C::Event,
    handle: &mut Handler<'_, C>,
    failed: &mut Option<String>,
) -> ControlFlow<()> {
    match handle(conn, event) {
        Ok(flow) => flow,
        Err(e) => {
            *failed = Some(e);
            ControlFlow::Break(())
        }
    }
}

/// An event after the client's side ended: handled, the first failure
/// kept.
fn keep_handling<C: Connection>(
    conn: &mut C,
    event: C::Event,
    handle: &mut Handler<'_, C>,
    failed: &mut Option<String>,
) {
    if let Err(e) = handle(conn, event)
        && failed.is_none()
    {
        *failed = Some(e);
    }
}

/// What a runtime's run gives the client role: the handler's failure
/// first, then a runtime failure other than the stream ending (which is
/// how a replay says it is done, and how a failing one stops).
fn conclude<C>(
    tap: Tap<C>,
    ran: Result<(), Error>,
    finished: Result<(), Error>,
    failed: Option<String>,
) -> Result<Driven, String> {
    if let Some(e) = failed {
        return Err(e);
    }
    for r in [ran, finished] {
        match r {
            Ok(()) | Err(Error::Ended { .. }) => {}
            Err(e) => return Err(format!("the runtime failed: {e}")),
        }
    }
    Ok(Driven {
        sent: tap.sent,
        error: tap.error,
    })
}

/// The client role through an async runtime: the same steps in each, its
/// crate's `Driver` and `Transport`, its way of running a future.
macro_rules! through_async_runtime {
    ($name:ident, $krate:ident, |$future:ident| $block_on:expr) => {
        pub(crate) fn $name<C: Connection>(
            link: &Link,
            path: &Path,
            conn: Tap<C>,
            handle: &mut Handler<'_, C>,
        ) -> Result<Driven, String> {
            use $krate::{Driver, Transport};
            let $future = async {
                let command = replay_command(link, path);
                let transport = match ssh_target(link)? {
                    Some(store) => Transport::ssh(&store, &command, &options()).await,
                    None => Transport::spawn(&command[0], &command[1..], &[]),
                }
                .map_err(|e| format!("{}: {e}", stringify!($name)))?;
                let mut driver = Driver::new(conn, transport);
                let mut failed = None;
                let ran = driver
                    .run(|c, e| step(&mut c.inner, e, handle, &mut failed))
                    .await;
                let (tap, finished) = driver
                    .finish(GRACE, |c, e| {
                        keep_handling(&mut c.inner, e, handle, &mut failed)
                    })
                    .await;
                conclude(tap, ran, finished, failed)
            };
            $block_on
        }
    };
}

through_async_runtime!(tokio, nixwire_tokio, |future| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?
        .block_on(future)
});

through_async_runtime!(smol, nixwire_smol, |future| smol::block_on(future));

pub(crate) fn blocking<C: Connection>(
    link: &Link,
    path: &Path,
    conn: Tap<C>,
    handle: &mut Handler<'_, C>,
) -> Result<Driven, String> {
    use nixwire_blocking::{Driver, Transport};
    let command = replay_command(link, path);
    let transport = match ssh_target(link)? {
        Some(store) => Transport::ssh(&store, &command, &options()),
        None => Transport::spawn(&command[0], &command[1..], &[]),
    }
    .map_err(|e| format!("blocking: {e}"))?;
    let mut driver = Driver::new(conn, transport);
    let mut failed = None;
    let ran = driver.run(|c, e| step(&mut c.inner, e, handle, &mut failed));
    let (tap, finished) = driver.finish(GRACE, |c, e| {
        keep_handling(&mut c.inner, e, handle, &mut failed)
    });
    conclude(tap, ran, finished, failed)
}
