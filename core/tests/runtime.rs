//! How a store URI is reached: the plan every runtime follows.

use std::path::PathBuf;

use nixwire_core::runtime::{DAEMON_SOCKET, Options, Plan};
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
