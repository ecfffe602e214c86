//! What the runtimes share about errors: how a broken handshake is told.

use nixwire_core::conn::{self, ErrorClass, ErrorKind, Phase};
use nixwire_core::runtime::{Error, Options, Plan};
use nixwire_core::uri::StoreUri;

fn plan(uri: &str) -> Plan {
    Plan::for_uri(
        &uri.parse::<StoreUri>().expect("uri"),
        &Options::default(),
        false,
    )
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
    let error = Error::from_handshake(&plan("ssh://builder"), closed(Phase::Handshake));
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
    let local = Error::from_handshake(&plan("local"), closed(Phase::Handshake));
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
    let ssh = Error::from_handshake(&plan("ssh-ng://builder"), wrong);
    assert!(matches!(ssh, Error::Connection(_)), "{ssh:?}");
    // A stream closing later is not about connecting.
    let later = Error::from_handshake(&plan("ssh://builder"), closed(Phase::Receiving));
    assert!(matches!(later, Error::Connection(_)), "{later:?}");
}
