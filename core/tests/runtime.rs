//! What every runtime shares: how a store URI is reached (the plan every
//! runtime follows), and how a broken handshake is told.

use std::path::PathBuf;

use nixwire_core::conn::{self, ErrorClass, ErrorKind, Phase};
use nixwire_core::runtime::{DAEMON_SOCKET, Error, Options, Plan};
use nixwire_core::session::Protocol;
use nixwire_core::uri::StoreUri;

fn plan(uri: &str, listening: bool) -> Plan {
    let uri: StoreUri = uri.parse().expect("a store URI");
    Plan::for_uri(&uri, &Options::default(), listening)
}

#[test]
fn each_uri_has_its_plan_and_protocol() {
    let Plan::Ssh {
        command, protocol, ..
    } = plan("ssh://h?remote-store=/srv", false)
    else {
        panic!("ssh");
    };
    assert_eq!(
        command,
        ["nix-store", "--serve", "--write", "--store", "/srv"]
    );
    assert_eq!(protocol, Protocol::Serve);
    let Plan::Ssh {
        command, protocol, ..
    } = plan("ssh-ng://h", false)
    else {
        panic!("ssh-ng");
    };
    assert_eq!(command, ["nix-daemon", "--stdio"]);
    assert_eq!(protocol, Protocol::Worker);
    assert_eq!(
        plan("unix:///run/d.sock", false),
        Plan::Unix {
            path: PathBuf::from("/run/d.sock")
        }
    );
    assert_eq!(
        plan("daemon", false),
        Plan::Unix {
            path: PathBuf::from(DAEMON_SOCKET)
        }
    );
    let local = Plan::Process {
        program: "nix-daemon".into(),
        args: vec!["--stdio".into()],
        protocol: Protocol::Worker,
    };
    assert_eq!(plan("local", false), local);
    // `auto`: the daemon when one listens, else the store itself.
    assert_eq!(plan("auto", false), local);
    assert_eq!(plan("auto", true).protocol(), Protocol::Worker);
    assert!(matches!(plan("auto", true), Plan::Unix { .. }));
}

#[test]
fn localhost_runs_the_remote_command_here_as_nix_does() {
    assert_eq!(
        plan("ssh://localhost?remote-store=/srv", false),
        Plan::Process {
            program: "nix-store".into(),
            args: ["--serve", "--write", "--store", "/srv"]
                .map(String::from)
                .to_vec(),
            protocol: Protocol::Serve,
        }
    );
    assert_eq!(
        plan("ssh-ng://localhost", false),
        Plan::Process {
            program: "nix-daemon".into(),
            args: vec!["--stdio".into()],
            protocol: Protocol::Worker,
        }
    );
    // A user or a port means a real ssh connection.
    assert!(matches!(
        plan("ssh://localhost:22", false),
        Plan::Ssh { .. }
    ));
    assert!(matches!(
        plan("ssh://me@localhost", false),
        Plan::Ssh { .. }
    ));
}

#[test]
fn an_ssh_plan_runs_here_without_ssh() {
    let here = plan("ssh://h?remote-program=/opt/nix-store", false).without_ssh();
    assert_eq!(
        here,
        Plan::Process {
            program: "/opt/nix-store".into(),
            args: vec!["--serve".into(), "--write".into()],
            protocol: Protocol::Serve,
        }
    );
}

fn closed(phase: Phase) -> conn::Error {
    conn::Error::new(
        ErrorKind::Closed {
            during: "before the server's handshake; received nothing".to_owned(),
        },
        phase,
    )
    .with_peer_said("Host key verification failed.")
}

#[test]
fn an_ssh_stream_closed_in_the_handshake_is_a_failure_to_connect() {
    let error = Error::from_handshake(&plan("ssh://builder", false), closed(Phase::Handshake));
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transport);
    let text = error.to_string();
    assert!(
        text.starts_with("cannot connect to ssh://builder"),
        "{text}"
    );
    assert!(text.contains("Host key verification failed."), "{text}");
}

#[test]
fn other_broken_handshakes_stay_connection_errors() {
    // A local program that exits: it was started, nothing to connect to.
    let local = Error::from_handshake(&plan("local", false), closed(Phase::Handshake));
    assert!(matches!(local, Error::Connection(_)), "{local:?}");
    // Over ssh, a server that answered wrongly did connect.
    let wrong = conn::Error::new(
        ErrorKind::WrongMagic {
            protocol: "worker",
            peer: "server",
            expected: 0x6f6c6978,
            found: "Welcome!".to_owned(),
        },
        Phase::Handshake,
    );
    let ssh = Error::from_handshake(&plan("ssh-ng://builder", false), wrong);
    assert!(matches!(ssh, Error::Connection(_)), "{ssh:?}");
    // A stream closing later is not about connecting.
    let later = Error::from_handshake(&plan("ssh://builder", false), closed(Phase::Receiving));
    assert!(matches!(later, Error::Connection(_)), "{later:?}");
}

#[test]
fn the_pump_tells_the_end_once_both_streams_are_read_out() {
    use bytes::Bytes;
    use nixwire_core::runtime::{Input, Next, Pump};
    use nixwire_core::session::{Event, Protocol, Session, SessionConfig};
    let now = std::time::Instant::now();
    let session = Session::new(SessionConfig::new(Protocol::Worker), now);
    let mut pump = Pump::new(session, true);
    pump.handle(
        now,
        Input::Stderr(Bytes::from_static(b"Permission denied\n")),
    );
    pump.handle(now, Input::StdoutEnd);
    // stderr may still say why: nothing ends yet.
    assert!(matches!(pump.poll(), Next::Wait));
    assert!(pump.reading() && !pump.reading_stdout() && pump.reading_stderr());
    pump.handle(now, Input::StderrEnd);
    let Next::Event(Event::Broken(error)) = pump.poll() else {
        panic!("not broken");
    };
    assert_eq!(error.peer_said.as_deref(), Some("Permission denied"));
    assert!(matches!(pump.poll(), Next::Ended));
}

#[test]
fn a_broken_pipe_is_not_an_error_of_the_pump_but_other_write_failures_are() {
    use nixwire_core::runtime::Pump;
    use nixwire_core::session::{Protocol, Session, SessionConfig};
    let now = std::time::Instant::now();
    let mut pump = Pump::new(
        Session::new(SessionConfig::new(Protocol::Serve), now),
        false,
    );
    assert!(
        pump.write_failed(std::io::ErrorKind::BrokenPipe.into())
            .is_ok()
    );
    let error = pump
        .write_failed(std::io::Error::other("disk on fire"))
        .expect_err("an error");
    assert_eq!(error.class(), ErrorClass::Transport);
}

#[test]
fn small_reads_of_a_body_share_a_block() {
    use nixwire_core::runtime::BodyBuf;
    let mut body = BodyBuf::new(64 * 1024);
    let mut pieces = Vec::new();
    for n in 0..40u8 {
        let room = body.room(64 * 1024);
        assert!(!room.is_empty() && room.len() <= 64 * 1024);
        room[..3].copy_from_slice(&[n, n, n]);
        pieces.push(body.take(3));
    }
    // Each piece is what was read into it ...
    for (n, piece) in pieces.iter().enumerate() {
        assert_eq!(piece.as_ref(), [n as u8; 3]);
    }
    // ... and they lie one after another in one block, not one block each.
    for pair in pieces.windows(2) {
        assert_eq!(pair[0].as_ptr().wrapping_add(3), pair[1].as_ptr());
    }
    // A read never gets more room than asked for.
    assert_eq!(body.room(10).len(), 10);
    // With less left than a fair share of a block, a new block.
    let mut body = BodyBuf::new(1024);
    let first = {
        body.room(1000);
        body.take(1000)
    };
    body.room(1000);
    let second = body.take(1);
    assert_ne!(first.as_ptr().wrapping_add(1000), second.as_ptr());
}
