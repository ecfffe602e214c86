//! Store URIs: every form parses, every error names its part, and writing a
//! parsed URI back gives text that parses to the same value.

use std::path::PathBuf;

use nixwire_core::uri::{
    HostKey, HostKeyError, Params, RemoteProtocol, SshParams, SshStore, StoreUri, UriError,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// `ssh-keygen -t ed25519 -C root@builder`, and the same line as
/// `base64 -w0 key.pub` writes it (newline included), as machines files
/// carry it.
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM94JI0aMe7KFuz+sMea9nBYHyJl292I1a76f/zkADrn root@builder";
const ED25519_B64: &str = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSU05NEpJMGFNZTdLRnV6K3NNZWE5bkJZSHlKbDI5MkkxYTc2Zi96a0FEcm4gcm9vdEBidWlsZGVyCg==";
const ECDSA_BODY: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLdSE+2utGIZnTwBFLRiHlZ5kflGmuYhv5BriSVQQfmX/g0OKysPR7PZPKX9Gxo3yDdXoqeIVPvMZzU4a+9UXXg=";

fn parse(uri: &str) -> StoreUri {
    uri.parse()
        .unwrap_or_else(|e| panic!("`{uri}` should parse: {e}"))
}

fn ssh(uri: &str) -> SshStore {
    match parse(uri) {
        StoreUri::Ssh(store) => store,
        other => panic!("`{uri}` is not an ssh store: {other:?}"),
    }
}

fn error(uri: &str) -> UriError {
    match uri.parse::<StoreUri>() {
        Ok(parsed) => panic!("`{uri}` should not parse, gave {parsed:?}"),
        Err(e) => e,
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn b64(text: &str) -> String {
    data_encoding::BASE64.encode(text.as_bytes())
}

#[test]
fn ssh_forms() {
    let s = ssh("ssh://builder");
    assert_eq!(s, SshStore::new(RemoteProtocol::Serve, "builder"));
    assert_eq!(s.port_or_default(), 22);
    assert_eq!(s.destination(), "builder");

    let s = ssh("ssh-ng://nix@builder.example.org:2222");
    assert_eq!(s.protocol, RemoteProtocol::Worker);
    assert_eq!(s.user.as_deref(), Some("nix"));
    assert_eq!(s.host, "builder.example.org");
    assert_eq!(s.port, Some(2222));
    assert_eq!(s.destination(), "nix@builder.example.org");

    let s = ssh("ssh://192.168.1.5:22");
    assert_eq!((s.host.as_str(), s.port), ("192.168.1.5", Some(22)));

    let s = ssh("ssh://[::1]:2222");
    assert_eq!((s.host.as_str(), s.port), ("::1", Some(2222)));
    assert_eq!(s.destination(), "::1");
    assert_eq!(s.authority(), "[::1]:2222");

    let s = ssh("ssh://root@[2001:db8::7]");
    assert_eq!((s.host.as_str(), s.port), ("2001:db8::7", None));

    // A zone, escaped as URIs want it or bare as older Nix took it.
    let s = ssh("ssh://[fe80::1%25eth0]:22");
    assert_eq!(s.host, "fe80::1%eth0");
    assert_eq!(s.authority(), "[fe80::1%25eth0]:22");
    assert_eq!(ssh("ssh://[fe80::1%eth0]").host, "fe80::1%eth0");

    // Unbracketed IPv6, as older Nix accepted it: no port possible.
    let s = ssh("ssh-ng://nix@::1");
    assert_eq!((s.host.as_str(), s.port), ("::1", None));

    // A percent-encoded user.
    assert_eq!(ssh("ssh://a%2Eb@h").user.as_deref(), Some("a.b"));

    assert!(ssh("ssh://localhost").is_localhost());
    assert!(!ssh("ssh://nix@localhost").is_localhost());
    assert!(!ssh("ssh://localhost:22").is_localhost());
}

#[test]
fn ssh_parameters() {
    let uri = format!(
        "ssh://builder?ssh-key=/root/.ssh/id_ed25519&base64-ssh-public-host-key={ED25519_B64}\
         &remote-program=/run/current-system/sw/bin/nix-store&remote-store=/home/nix/store\
         &compress=true&max-connections=4&trusted=1&priority=10"
    );
    let p = ssh(&uri).params;
    assert_eq!(p.ssh_key, Some(PathBuf::from("/root/.ssh/id_ed25519")));
    assert_eq!(
        p.host_key.as_ref().map(HostKey::to_string).as_deref(),
        Some(ED25519)
    );
    assert_eq!(
        p.remote_program.as_deref(),
        Some("/run/current-system/sw/bin/nix-store")
    );
    assert_eq!(p.remote_store.as_deref(), Some("/home/nix/store"));
    assert!(p.compress);
    assert_eq!(p.max_connections, Some(4));
    assert_eq!(p.others, params(&[("priority", "10"), ("trusted", "1")]));

    // Values are percent-decoded; `+` stays `+`.
    let p = ssh("ssh://b?remote-store=local%3Froot%3D%2Fhome%2Fnix&x=a+b%20c").params;
    assert_eq!(p.remote_store.as_deref(), Some("local?root=/home/nix"));
    assert_eq!(p.others, params(&[("x", "a+b c")]));

    // Nix's spellings of booleans.
    for (text, value) in [
        ("true", true),
        ("yes", true),
        ("1", true),
        ("false", false),
        ("no", false),
        ("0", false),
    ] {
        assert_eq!(
            ssh(&format!("ssh://b?compress={text}")).params.compress,
            value
        );
    }

    // Empty values mean "not set", as in Nix; empty items are skipped.
    let p = ssh("ssh://b?ssh-key=&base64-ssh-public-host-key=&remote-store=&&").params;
    assert_eq!(p, SshParams::default());
}

#[test]
fn other_forms() {
    assert_eq!(
        parse("unix:///nix/var/nix/daemon-socket/socket"),
        StoreUri::Unix {
            path: "/nix/var/nix/daemon-socket/socket".into(),
            params: Params::new()
        }
    );
    assert_eq!(
        parse("unix:///run/a%20b?max-connections=2"),
        StoreUri::Unix {
            path: "/run/a b".into(),
            params: params(&[("max-connections", "2")])
        }
    );
    let daemon = StoreUri::Daemon {
        params: Params::new(),
    };
    assert_eq!(parse("daemon"), daemon);
    assert_eq!(parse("unix://"), daemon);
    assert_eq!(
        parse("daemon?trusted=true"),
        StoreUri::Daemon {
            params: params(&[("trusted", "true")])
        }
    );
    let local = |root: Option<&str>, ps: &[(&str, &str)]| StoreUri::Local {
        root: root.map(PathBuf::from),
        params: params(ps),
    };
    assert_eq!(parse("local"), local(None, &[]));
    assert_eq!(parse("local?root=/mnt"), local(Some("/mnt"), &[]));
    assert_eq!(parse("local:///mnt"), local(Some("/mnt"), &[]));
    assert_eq!(parse("local://"), local(None, &[]));
    assert_eq!(parse("/mnt/nix"), local(Some("/mnt/nix"), &[]));
    assert_eq!(
        parse("/mnt/nix?read-only=true"),
        local(Some("/mnt/nix"), &[("read-only", "true")])
    );
    // A relative path is kept as written (the opener resolves it).
    assert_eq!(parse("./store"), local(Some("./store"), &[]));
    let auto = |ps: &[(&str, &str)]| StoreUri::Auto { params: params(ps) };
    assert_eq!(parse("auto"), auto(&[]));
    assert_eq!(parse(""), auto(&[]));
    assert_eq!(parse("?priority=1"), auto(&[("priority", "1")]));
    assert_eq!(parse("auto?state=/var/nix"), auto(&[("state", "/var/nix")]));
}

/// Asserts that `uri` fails with `expected` as its message.
fn fails(uri: &str, expected: &str) -> UriError {
    let e = error(uri);
    assert_eq!(e.to_string(), expected, "message for `{uri}`");
    e
}

#[test]
fn errors_name_their_part() {
    let e = fails(
        "builder",
        "`builder` is not a store URI: expected `scheme://…` (one of ssh, ssh-ng, unix, local), `daemon`, `local`, `auto` or a path",
    );
    assert!(matches!(e, UriError::NotAStoreUri { .. }));
    assert!(matches!(error("Ssh://h"), UriError::NotAStoreUri { .. }));

    let e = fails(
        "https://cache.nixos.org",
        "unknown scheme `https` in store URI `https://cache.nixos.org`: expected one of ssh, ssh-ng, unix, local",
    );
    assert!(matches!(e, UriError::Scheme { ref scheme, .. } if scheme == "https"));
    // Errors come in reading order: the scheme before the parameters, the
    // host before the parameters.
    assert!(matches!(
        error("https://cache.nixos.org?flag"),
        UriError::Scheme { .. }
    ));
    assert!(matches!(
        error("ssh://-h?compress=maybe"),
        UriError::Host { .. }
    ));

    let e = fails(
        "ssh://@host",
        "bad user `` in store URI `ssh://@host`: expected a user name before `@`",
    );
    assert!(matches!(e, UriError::User { .. }));
    let e = error("ssh://nix:secret@host");
    assert!(matches!(e, UriError::User { ref user, .. } if user == "nix:secret"));
    assert!(e.to_string().contains("no password"), "{e}");
    let e = error("ssh://-oProxyCommand=x@host");
    assert!(matches!(e, UriError::User { .. }));
    assert!(e.to_string().contains("not starting with `-`"), "{e}");
    assert!(matches!(error("ssh://a%zzb@h"), UriError::User { .. }));
    assert!(matches!(error("ssh://a%20b@h"), UriError::User { .. }));

    let e = fails(
        "ssh://",
        "bad host `` in store URI `ssh://`: expected a host name of letters, digits, `.`, `-` and `_`, or an IPv6 address in brackets",
    );
    assert!(matches!(e, UriError::Host { .. }));
    let e = error("ssh://-oProxyCommand=touch");
    assert!(matches!(e, UriError::Host { .. }));
    assert!(
        e.to_string().contains("ssh would read it as an option"),
        "{e}"
    );
    let e = fails(
        "ssh://[::1",
        "bad host `[::1` in store URI `ssh://[::1`: expected a `]` closing the IPv6 address",
    );
    assert!(matches!(e, UriError::Host { .. }));
    let e = error("ssh://[builder]:22");
    assert!(matches!(e, UriError::Host { ref host, .. } if host == "[builder]"));
    assert!(matches!(error("ssh://[::1]x"), UriError::Host { .. }));
    assert!(matches!(error("ssh://[fe80::1%25]"), UriError::Host { .. }));
    assert!(matches!(error("ssh://bu ilder"), UriError::Host { .. }));
    assert!(matches!(error("ssh://h#frag"), UriError::Host { .. }));
    let e = error("ssh://1:2:zz");
    assert!(matches!(e, UriError::Host { .. }));
    assert!(e.to_string().contains("in brackets"), "{e}");

    let e = fails(
        "ssh://host:abc",
        "bad port `abc` in store URI `ssh://host:abc`: expected a decimal port number",
    );
    assert!(matches!(e, UriError::Port { ref port, .. } if port == "abc"));
    assert!(matches!(error("ssh://host:"), UriError::Port { .. }));
    assert!(matches!(error("ssh://[::1]:-1"), UriError::Port { .. }));
    for out_of_range in ["0", "65536", "99999999999999999999"] {
        let e = error(&format!("ssh://host:{out_of_range}"));
        assert!(matches!(e, UriError::Port { .. }));
        assert!(e.to_string().contains("from 1 to 65535"), "{e}");
    }

    let e = error("ssh://host/nix/store");
    assert!(matches!(e, UriError::Path { ref path, .. } if path == "/nix/store"));
    assert!(e.to_string().contains("remote-store="), "{e}");
    let e = fails(
        "unix://socket",
        "bad path `socket` in store URI `unix://socket`: expected an absolute socket path, as in `unix:///nix/var/nix/daemon-socket/socket`",
    );
    assert!(matches!(e, UriError::Path { .. }));
    assert!(matches!(error("unix:///a%2"), UriError::Path { .. }));
    assert!(matches!(error("local://mnt"), UriError::Path { .. }));
}

#[test]
fn parameter_errors() {
    let e = fails(
        "ssh://h?compress=maybe",
        "bad parameter `compress` = `maybe` in store URI `ssh://h?compress=maybe`: expected `true` or `false` (or yes/no, 1/0)",
    );
    assert!(
        matches!(e, UriError::Parameter { ref name, ref value, .. } if name == "compress" && value == "maybe")
    );
    let e = error("ssh://h?max-connections=-1");
    assert!(matches!(e, UriError::Parameter { ref name, .. } if name == "max-connections"));
    assert!(matches!(
        error("ssh://h?max-connections=4294967296"),
        UriError::Parameter { .. }
    ));
    let e = error("ssh://h?remote-program=%20");
    assert!(matches!(e, UriError::Parameter { ref name, .. } if name == "remote-program"));
    let e = error("daemon?trusted");
    assert!(matches!(e, UriError::Parameter { ref name, .. } if name == "trusted"));
    assert!(e.to_string().contains("`name=value`"), "{e}");
    let e = error("ssh://h?priority=1&priority=2");
    assert!(matches!(e, UriError::Parameter { ref value, .. } if value == "2"));
    assert!(e.to_string().contains("given before as `1`"), "{e}");
    let e = error("ssh://h?x=%zz");
    assert!(matches!(e, UriError::Parameter { ref name, .. } if name == "x"));
    assert!(e.to_string().contains("two hex digits"), "{e}");
    assert!(matches!(error("ssh://h?x=%ff"), UriError::Parameter { .. }));
    let e = error("/mnt?root=/other");
    assert!(matches!(e, UriError::Parameter { ref name, .. } if name == "root"));
    assert!(matches!(
        error("local:///mnt?root=/other"),
        UriError::Parameter { .. }
    ));
}

fn host_key_error(value: &str) -> HostKeyError {
    let uri = format!("ssh://h?base64-ssh-public-host-key={value}");
    match error(&uri) {
        UriError::HostKey { problem, from, .. } => {
            assert_eq!(from, "parameter `base64-ssh-public-host-key`");
            problem
        }
        other => panic!("`{uri}` gave {other:?}"),
    }
}

#[test]
fn host_key_errors() {
    let e = error("ssh://h?base64-ssh-public-host-key=no_base64");
    assert_eq!(
        e.to_string(),
        "bad ssh public host key in parameter `base64-ssh-public-host-key` of store URI \
         `ssh://h?base64-ssh-public-host-key=no_base64`: it is not base64: `_` at byte 2 \
         (expected A-Z, a-z, 0-9, `+`, `/`, then `=` padding)"
    );
    assert_eq!(
        host_key_error("no_base64"),
        HostKeyError::Base64 {
            position: 2,
            found: '_'
        }
    );
    assert_eq!(host_key_error("%2F%2F%2F%2F"), HostKeyError::NotText);
    assert_eq!(host_key_error(&b64(" \n")), HostKeyError::Empty);
    assert!(matches!(
        host_key_error(&b64("hello")),
        HostKeyError::NotAKeyLine { .. }
    ));
    assert_eq!(
        host_key_error(&b64(&format!("{ED25519}\n{ED25519}\n"))),
        HostKeyError::SeveralLines { lines: 2 }
    );
    assert!(matches!(
        host_key_error(&b64("@cert-authority AAAA")),
        HostKeyError::Algorithm { .. }
    ));
    let e = host_key_error(&b64("ssh-ed25519 AAAA*"));
    assert!(matches!(e, HostKeyError::Body { .. }));
    assert!(e.to_string().contains("not padded base64"), "{e}");
    let e = host_key_error(&b64(&format!("ssh-ed25519 {ECDSA_BODY}")));
    assert_eq!(
        e.to_string(),
        "the body of the `ssh-ed25519` key is not one: the key inside is a `ecdsa-sha2-nistp256` key"
    );
    assert!(matches!(
        host_key_error(&b64("ssh-ed25519 AAAA")),
        HostKeyError::Body { .. }
    ));
    assert!(matches!(
        host_key_error(&b64(&format!("{ED25519}\u{7}"))),
        HostKeyError::NotAKeyLine { .. }
    ));
}

#[test]
fn host_keys() {
    let key = HostKey::from_base64(ED25519_B64).expect("key");
    assert_eq!(key.algorithm(), "ssh-ed25519");
    assert_eq!(
        key.body(),
        "AAAAC3NzaC1lZDI1NTE5AAAAIM94JI0aMe7KFuz+sMea9nBYHyJl292I1a76f/zkADrn"
    );
    assert_eq!(key.comment(), Some("root@builder"));
    assert_eq!(key.blob().len(), 4 + 11 + 4 + 32);
    assert_eq!(&key.blob()[4..15], b"ssh-ed25519");
    assert_eq!(
        key.known_hosts_key(),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM94JI0aMe7KFuz+sMea9nBYHyJl292I1a76f/zkADrn"
    );
    assert_eq!(key.to_string(), ED25519);
    assert_eq!(HostKey::from_base64(&key.to_base64()), Ok(key.clone()));
    assert_eq!(ED25519.parse::<HostKey>(), Ok(key));

    let line = format!("ecdsa-sha2-nistp256 {ECDSA_BODY}");
    let key: HostKey = line.parse().expect("ecdsa key");
    assert_eq!(key.comment(), None);
    assert_eq!(key.known_hosts_key(), line);
    // Nix's lenient base64: no padding needed.
    let unpadded = b64(&line).trim_end_matches('=').to_owned();
    assert_eq!(HostKey::from_base64(&unpadded), Ok(key));
}

/// URIs whose parse, display, parse gives the first parse again, and
/// whose display is stable.
const ROUND_TRIPS: &[&str] = &[
    "ssh://builder",
    "ssh-ng://nix@builder.example.org:2222",
    "ssh://[::1]:2222",
    "ssh://root@[fe80::1%25eth0]",
    "ssh://::1",
    "ssh://a%2Eb@h",
    "ssh://b?remote-store=local%3Froot%3D%2Fhome%2Fnix&x=a+b%20c&y=%26%3D%23%25",
    "ssh://b?compress=yes&max-connections=0&ssh-key=/k%20ey&remote-program=nix-store%20--option%20a%20b",
    "ssh://b?compress=false",
    "unix:///nix/var/nix/daemon-socket/socket",
    "unix:///run/a%20b%3Fc?max-connections=2",
    "unix://",
    "daemon",
    "daemon?trusted=true",
    "local",
    "local?root=/mnt",
    "local?root=relative",
    "local?root=/a%3Fb",
    "local:///mnt",
    "/mnt/nix?read-only=true&state=/var",
    "./store",
    "auto",
    "",
    "?priority=1",
];

#[test]
fn round_trips() {
    let mut uris: Vec<String> = ROUND_TRIPS.iter().map(|s| (*s).to_owned()).collect();
    uris.push(format!(
        "ssh-ng://h?base64-ssh-public-host-key={ED25519_B64}"
    ));
    for uri in uris {
        let first = parse(&uri);
        let text = first.to_string();
        let second: StoreUri = text
            .parse()
            .unwrap_or_else(|e| panic!("`{uri}` displayed as `{text}`, which does not parse: {e}"));
        assert_eq!(first, second, "`{uri}` displayed as `{text}`");
        assert_eq!(second.to_string(), text, "display of `{uri}` is stable");
    }
    // Displays are canonical: parameters in name order, keys re-encoded.
    assert_eq!(
        parse("ssh://b?z=1&compress=yes&a=%41").to_string(),
        "ssh://b?a=A&compress=true&z=1"
    );
    assert_eq!(parse("local:///mnt").to_string(), "/mnt");
    assert_eq!(parse("unix://").to_string(), "daemon");
    assert_eq!(parse("").to_string(), "auto");
    assert_eq!(
        parse("ssh://[fe80::1%eth0]").to_string(),
        "ssh://[fe80::1%25eth0]"
    );
}

/// An ssh store with arbitrary (valid) parts and parameter text.
#[derive(Debug, Clone)]
struct AnySsh(SshStore);

fn text(g: &mut Gen) -> String {
    let alphabet = [
        'a', 'Z', '0', ' ', '%', '&', '=', '?', '#', '+', '/', ':', '@', '\'', '"', 'é', '\n', '[',
        ']', '~', ';',
    ];
    let len = usize::arbitrary(g) % 12;
    (0..len)
        .map(|_| *g.choose(&alphabet).unwrap_or(&'a'))
        .collect()
}

impl Arbitrary for AnySsh {
    fn arbitrary(g: &mut Gen) -> Self {
        let protocol = *g
            .choose(&[RemoteProtocol::Serve, RemoteProtocol::Worker])
            .unwrap_or(&RemoteProtocol::Serve);
        let host = *g
            .choose(&[
                "builder",
                "10.0.0.1",
                "::1",
                "fe80::1%eth0",
                "a-b_c.example",
            ])
            .unwrap_or(&"h");
        let mut store = SshStore::new(protocol, host);
        if bool::arbitrary(g) {
            store.user = Some(
                g.choose(&["nix", "a.b", "x!$&'()*+,;=y", "é"])
                    .copied()
                    .unwrap_or("nix")
                    .to_owned(),
            );
        }
        store.port = Option::<u16>::arbitrary(g).filter(|&p| p > 0);
        let p = &mut store.params;
        p.ssh_key = bool::arbitrary(g).then(|| PathBuf::from(format!("/{}", text(g))));
        p.remote_store = Some(text(g)).filter(|s| !s.is_empty());
        p.remote_program = Some(format!("prog{}", text(g)));
        p.compress = bool::arbitrary(g);
        p.max_connections = Option::arbitrary(g);
        for _ in 0..usize::arbitrary(g) % 4 {
            p.others.insert(format!("k{}", text(g)), text(g));
        }
        Self(store)
    }
}

#[test]
fn arbitrary_ssh_stores_round_trip() {
    fn round_trips(any: AnySsh) -> bool {
        let store = StoreUri::Ssh(any.0);
        let text = store.to_string();
        text.parse::<StoreUri>().as_ref() == Ok(&store)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(round_trips as fn(AnySsh) -> bool);
}

#[cfg(feature = "machines")]
mod machines {
    use std::collections::BTreeSet;

    use nixwire_core::machines::{Machine, NoFiles, ParseOptions, parse};

    use super::*;

    fn machine(line: &str) -> Machine {
        let file = parse("<test>", line, &ParseOptions::default(), &NoFiles).expect("machines");
        file.machine_list().remove(0)
    }

    #[test]
    fn columns_complete_the_uri() {
        let m = machine(&format!(
            "nix@builder x86_64-linux /root/.ssh/id 4 1 kvm - {ED25519_B64}"
        ));
        let StoreUri::Ssh(s) = StoreUri::from_machine(&m).expect("store") else {
            panic!("not ssh");
        };
        assert_eq!(s.protocol, RemoteProtocol::Serve);
        assert_eq!(s.destination(), "nix@builder");
        assert_eq!(s.params.ssh_key, Some(PathBuf::from("/root/.ssh/id")));
        assert_eq!(
            s.params.host_key.map(|k| k.to_string()).as_deref(),
            Some(ED25519)
        );
        // Nothing from Nix's build hook (max-connections, log-fd,
        // system-features) is added.
        assert_eq!(s.params.max_connections, None);
        assert!(s.params.others.is_empty());
    }

    #[test]
    fn columns_win_over_the_uri() {
        let line = format!(
            "ssh-ng://b?ssh-key=/uri/key&base64-ssh-public-host-key={} - /column/key - - - - {ED25519_B64}",
            b64(&format!("ecdsa-sha2-nistp256 {ECDSA_BODY}"))
        );
        let StoreUri::Ssh(s) = StoreUri::from_machine(&machine(&line)).expect("store") else {
            panic!("not ssh");
        };
        assert_eq!(s.protocol, RemoteProtocol::Worker);
        assert_eq!(s.params.ssh_key, Some(PathBuf::from("/column/key")));
        assert_eq!(
            s.params
                .host_key
                .map(|k| k.algorithm().to_owned())
                .as_deref(),
            Some("ssh-ed25519")
        );

        // Without columns the URI's own parameters stay.
        let line = "ssh-ng://b?ssh-key=/uri/key";
        let StoreUri::Ssh(s) = StoreUri::from_machine(&machine(line)).expect("store") else {
            panic!("not ssh");
        };
        assert_eq!(s.params.ssh_key, Some(PathBuf::from("/uri/key")));
    }

    #[test]
    fn other_stores_ignore_the_key_columns() {
        let m = machine(&format!("local - /root/.ssh/id - - - - {ED25519_B64}"));
        assert_eq!(
            StoreUri::from_machine(&m),
            Ok(StoreUri::Local {
                root: None,
                params: Params::new()
            })
        );
    }

    #[test]
    fn hand_built_machines_are_normalized_and_checked() {
        let mut m = Machine::with_defaults("builder", BTreeSet::new());
        m.uri = "builder:2222".to_owned();
        let StoreUri::Ssh(s) = StoreUri::from_machine(&m).expect("store") else {
            panic!("not ssh");
        };
        assert_eq!((s.host.as_str(), s.port), ("builder", Some(2222)));

        m.ssh_public_host_key = Some(b64("not a key"));
        let e = StoreUri::from_machine(&m).expect_err("bad key");
        assert!(matches!(e, UriError::HostKey { ref from, .. } if from.contains("column 8")));
        assert!(e.to_string().contains("machines column 8"), "{e}");
    }
}

#[test]
fn a_host_key_from_the_wire_is_the_key_its_line_gives() {
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd8dXaXczuCt7B9zt4Ng3S9zsfY8gb+Ig6G9ZSZpZCo";
    let key: HostKey = line.parse().expect("a key line");
    let again = HostKey::from_blob(key.blob()).expect("a blob");
    assert_eq!(again.algorithm(), "ssh-ed25519");
    assert_eq!(again.blob(), key.blob());
    assert_eq!(again.to_string(), line);
    assert!(HostKey::from_blob(&[0, 0, 0, 99, b'x']).is_err());
}
