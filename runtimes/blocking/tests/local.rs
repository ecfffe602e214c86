//! The driver's waits against plain programs and a socket, no Nix needed:
//! a cancel from another thread wakes a waiting driver at once and closes
//! the peer's stdin, a peer that ignores that is killed after the grace,
//! and the connection's deadline ends a wait for a silent peer.

use std::io::Read;
use std::ops::ControlFlow;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nixwire_blocking::{Canceller, Driver, Error, Transport};
use nixwire_core::conn::ErrorClass;
use nixwire_core::session::{Event, Protocol, Session, SessionConfig};

/// Longer than any wait here should take, shorter than the peers live.
const PROMPTLY: Duration = Duration::from_secs(5);

fn session(protocol: Protocol) -> Session {
    Session::new(SessionConfig::new(protocol), Instant::now())
}

/// Cancels from another thread after `after`.
fn cancel_later(canceller: Canceller, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        canceller.cancel();
    })
}

#[test]
fn a_canceller_can_go_to_another_thread() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Canceller>();
}

#[test]
fn a_cancel_wakes_the_driver_and_closes_the_peers_stdin() {
    // `cat` exits once its stdin ends: a prompt exit shows it was closed.
    let transport = Transport::spawn("cat", &[], &[]).expect("cat");
    let mut driver = Driver::new(session(Protocol::Serve), transport);
    let canceller = cancel_later(driver.canceller(), Duration::from_millis(200));
    let start = Instant::now();
    let ran = driver.run(|_, _| ControlFlow::<()>::Continue(()));
    assert!(matches!(ran, Err(Error::Cancelled { .. })), "{ran:?}");
    assert!(start.elapsed() < PROMPTLY, "{:?}", start.elapsed());
    canceller.join().expect("canceller");
    driver.abort(PROMPTLY).expect("cat exits on its own");
}

#[test]
fn a_peer_that_ignores_the_end_of_its_stdin_is_killed_after_the_grace() {
    let transport = Transport::spawn("sleep", &["60".to_owned()], &[]).expect("sleep");
    let driver = Driver::new(session(Protocol::Serve), transport);
    let start = Instant::now();
    let aborted = driver.abort(Duration::from_millis(300));
    assert!(
        matches!(aborted, Err(Error::TimedOut { .. })),
        "{aborted:?}"
    );
    assert!(start.elapsed() < PROMPTLY, "{:?}", start.elapsed());
}

#[test]
fn the_handshake_deadline_ends_the_wait_for_a_silent_peer() {
    let transport = Transport::spawn("sleep", &["60".to_owned()], &[]).expect("sleep");
    let config = SessionConfig::new(Protocol::Worker)
        .with_handshake_timeout(Some(Duration::from_millis(300)));
    let mut driver = Driver::new(Session::new(config, Instant::now()), transport);
    let start = Instant::now();
    let broken = driver
        .run(|_, event| match event {
            Event::Broken(e) => ControlFlow::Break(e),
            _ => ControlFlow::Continue(()),
        })
        .expect("the session breaks");
    assert_eq!(broken.class(), ErrorClass::Timeout, "{broken}");
    assert!(start.elapsed() < PROMPTLY, "{:?}", start.elapsed());
    let _ = driver.abort(Duration::from_millis(100));
}

#[test]
fn a_cancel_ends_our_side_of_a_socket() {
    let dir = std::env::temp_dir().join(format!("nixwire-blocking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("listen");
    // The daemon's side: reads what comes until our side ends.
    let daemon = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).map(|_| Instant::now())
    });
    let transport = Transport::unix(&path).expect("connect");
    let mut driver = Driver::new(session(Protocol::Worker), transport);
    let canceller = cancel_later(driver.canceller(), Duration::from_millis(200));
    let ran = driver.run(|_, _| ControlFlow::<()>::Continue(()));
    assert!(matches!(ran, Err(Error::Cancelled { .. })), "{ran:?}");
    let cancelled = Instant::now();
    let ended = daemon.join().expect("daemon").expect("read to the end");
    assert!(ended.duration_since(cancelled) < PROMPTLY);
    canceller.join().expect("canceller");
    driver
        .abort(PROMPTLY)
        .expect("a socket has nothing to wait for");
    let _ = std::fs::remove_dir_all(&dir);
}
