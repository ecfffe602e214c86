//! The ssh invocation: `NIX_SSHOPTS` splitting, the remote command, shell
//! quoting checked through a real `/bin/sh`, known_hosts lines (checked
//! with `ssh-keygen -F` when it is installed), and the whole argv for a few
//! URIs (checked with `ssh -G`, which parses options without connecting,
//! when ssh is installed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nixwire_core::ssh::{
    Invocation, SshError, SshOptions, invocation, invocation_for, known_hosts_line,
    known_hosts_name, remote_command, remote_command_line, shell_quote, split_sshopts,
};
use nixwire_core::uri::{HostKey, RemoteProtocol, SshStore, StoreUri};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM94JI0aMe7KFuz+sMea9nBYHyJl292I1a76f/zkADrn root@builder";
const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM94JI0aMe7KFuz+sMea9nBYHyJl292I1a76f/zkADrn";

fn ssh(uri: &str) -> SshStore {
    match uri.parse::<StoreUri>() {
        Ok(StoreUri::Ssh(store)) => store,
        other => panic!("`{uri}` is not an ssh store: {other:?}"),
    }
}

fn key() -> HostKey {
    ED25519.parse().expect("key")
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs `sh -c SCRIPT`, returning its stdout.
fn sh(script: &str) -> String {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run /bin/sh");
    assert!(out.status.success(), "sh -c {script:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn sshopts_split_like_a_shell() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("  \t\n ", &[]),
        ("-oA=b -i key", &["-oA=b", "-i", "key"]),
        (
            r#"-oProxyCommand="ssh -W %h:%p jump""#,
            &["-oProxyCommand=ssh -W %h:%p jump"],
        ),
        ("-o 'ProxyJump a b'", &["-o", "ProxyJump a b"]),
        (r"a\ b c", &["a b", "c"]),
        ("'' \"\"", &["", ""]),
        (
            r#""a\"b" "a\b" "a\\b" "\$x""#,
            &["a\"b", r"a\b", r"a\b", "$x"],
        ),
        (r#"'a\b' 'it'\''s'"#, &[r"a\b", "it's"]),
        ("$HOME `x` ~ * #c", &["$HOME", "`x`", "~", "*", "#c"]),
        ("a\\\nb", &["ab"]),
        ("\"a\\\nb\"", &["ab"]),
        ("x'y'\"z\"", &["xyz"]),
        ("é\tü", &["é", "ü"]),
    ];
    for (input, expected) in cases {
        assert_eq!(
            split_sshopts(input).as_deref(),
            Ok(words(expected).as_slice()),
            "splitting {input:?}"
        );
    }
}

#[test]
fn sshopts_split_as_sh_does() {
    // Inputs without expansions: sh must give the same words.
    let inputs = [
        r#"-oProxyCommand="ssh -W %h:%p jump" -v"#,
        r"a\ b 'c d' e\'f",
        r#""a\"b" "a\b" "a\\b" '\' "x'y""#,
        "'' \"\" x''y",
        "a\\\nb \"c\\\nd\" '\n'",
    ];
    for input in inputs {
        let ours = split_sshopts(input).expect("split");
        let theirs = sh(&format!("for a in {input}; do printf '<%s>' \"$a\"; done"));
        let ours: String = ours.iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(ours, theirs, "splitting {input:?}");
    }
}

#[test]
fn sshopts_errors() {
    let e = split_sshopts("-o 'ProxyJump a").expect_err("unterminated");
    assert_eq!(
        e,
        SshError::UnterminatedQuote {
            input: "-o 'ProxyJump a".to_owned(),
            quote: '\'',
            at: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "NIX_SSHOPTS `-o 'ProxyJump a`: the ' quote at byte 3 is not closed; expected a matching '"
    );
    assert!(matches!(
        split_sshopts(r#"a "b\""#),
        Err(SshError::UnterminatedQuote {
            quote: '"',
            at: 2,
            ..
        })
    ));
    let e = split_sshopts("a\\").expect_err("backslash");
    assert!(matches!(e, SshError::TrailingBackslash { .. }));
    assert_eq!(
        e.to_string(),
        "NIX_SSHOPTS `a\\` ends with a lone `\\`; expected a character after it"
    );
}

#[test]
fn remote_commands() {
    assert_eq!(
        remote_command(&ssh("ssh://b")),
        words(&["nix-store", "--serve", "--write"])
    );
    assert_eq!(
        remote_command(&ssh("ssh-ng://b")),
        words(&["nix-daemon", "--stdio"])
    );
    assert_eq!(
        remote_command(&ssh(
            "ssh://b?remote-program=/run/current-system/sw/bin/nix-store&remote-store=/home/nix/my%20store"
        )),
        words(&[
            "/run/current-system/sw/bin/nix-store",
            "--serve",
            "--write",
            "--store",
            "/home/nix/my store"
        ])
    );
    assert_eq!(
        remote_command(&ssh(
            "ssh-ng://b?remote-program=nix-daemon%20--option%20x%20y&remote-store=local%3Froot%3D%2Fr"
        )),
        words(&[
            "nix-daemon",
            "--option",
            "x",
            "y",
            "--stdio",
            "--store",
            "local?root=/r"
        ])
    );
    // A hand-built store whose program is only whitespace falls back.
    let mut store = SshStore::new(RemoteProtocol::Worker, "b");
    store.params.remote_program = Some(" ".to_owned());
    assert_eq!(remote_command(&store), words(&["nix-daemon", "--stdio"]));
}

/// Words a shell would otherwise read specially.
const NASTY: &[&str] = &[
    "",
    " ",
    "a b",
    "a;touch /tmp/nixwire-pwned",
    "$(id)",
    "`id`",
    "${HOME}",
    "$HOME",
    "'",
    "''",
    "it's",
    "\"",
    "a\"b'c",
    "\\",
    "a\\nb",
    "line\nbreak",
    "\t",
    "*",
    "?",
    "[a]",
    "~",
    "~root",
    "a=~",
    "=ls",
    "FOO=bar",
    "#comment",
    "a#b",
    "&",
    "|",
    "<in",
    ">out",
    "(x)",
    "{a,b}",
    "!",
    "%1",
    "--store",
    "-n",
    "é ü",
];

#[test]
fn shell_quote_table() {
    let cases = [
        ("nix-store", "nix-store"),
        ("--serve", "--serve"),
        ("/nix/store", "/nix/store"),
        ("a=b", "a=b"),
        ("user@host:22,x+y", "user@host:22,x+y"),
        ("", "''"),
        ("a b", "'a b'"),
        ("it's", "'it'\\''s'"),
        ("$(id)", "'$(id)'"),
        ("=ls", "'=ls'"),
        ("~", "'~'"),
        ("line\nbreak", "'line\nbreak'"),
    ];
    for (word, quoted) in cases {
        assert_eq!(shell_quote(word), quoted, "quoting {word:?}");
    }
}

/// The shell reads `shell_quote(word)` back as `word`.
fn sh_reads_back(word: &str) -> bool {
    let quoted = shell_quote(word);
    sh(&format!("printf %s {quoted}")) == word
}

#[test]
fn shell_quote_through_sh() {
    for word in NASTY {
        assert!(sh_reads_back(word), "sh did not read back {word:?}");
    }
}

/// A word of characters a shell cares about, and others.
#[derive(Debug, Clone)]
struct Word(String);

impl Arbitrary for Word {
    fn arbitrary(g: &mut Gen) -> Self {
        let alphabet = [
            'a', 'Z', '0', ' ', '\t', '\n', '\'', '"', '\\', '$', '`', '(', ')', ';', '&', '|',
            '<', '>', '*', '?', '[', ']', '~', '#', '=', '!', '{', '}', '%', '-', '/', 'é',
            '\u{7f}',
        ];
        let len = usize::arbitrary(g) % 16;
        Self(
            (0..len)
                .map(|_| *g.choose(&alphabet).unwrap_or(&'a'))
                .collect(),
        )
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(Word))
    }
}

#[test]
fn shell_quote_quickcheck() {
    fn prop(word: Word) -> bool {
        // NUL cannot be in an argument at all.
        word.0.contains('\0') || sh_reads_back(&word.0)
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(Word) -> bool);
    // Arbitrary strings too (any Unicode).
    fn any(word: String) -> bool {
        word.contains('\0') || sh_reads_back(&word)
    }
    QuickCheck::new()
        .tests(100)
        .quickcheck(any as fn(String) -> bool);
}

#[test]
fn remote_command_lines_come_back_as_the_same_words() {
    let line = remote_command_line(NASTY);
    let back = sh(&format!("for a in {line}; do printf '<%s>' \"$a\"; done"));
    let expected: String = NASTY.iter().map(|w| format!("<{w}>")).collect();
    assert_eq!(back, expected);
    assert_eq!(
        remote_command_line(&remote_command(&ssh("ssh://b?remote-store=/my%20store"))),
        "nix-store --serve --write --store '/my store'"
    );
    assert_eq!(remote_command_line::<&str>(&[]), "");
}

#[test]
fn known_hosts_lines() {
    let key = key();
    assert_eq!(
        known_hosts_line("builder", None, &key),
        format!("builder {ED25519_KEY}")
    );
    assert_eq!(
        known_hosts_line("builder", Some(22), &key),
        format!("builder {ED25519_KEY}")
    );
    assert_eq!(
        known_hosts_line("builder", Some(2222), &key),
        format!("[builder]:2222 {ED25519_KEY}")
    );
    assert_eq!(
        known_hosts_line("::1", None, &key),
        format!("::1 {ED25519_KEY}")
    );
    assert_eq!(
        known_hosts_line("::1", Some(2222), &key),
        format!("[::1]:2222 {ED25519_KEY}")
    );
    assert_eq!(
        known_hosts_name("Builder.Example.ORG", Some(22)),
        "builder.example.org"
    );
}

/// A directory of this test's own under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nixwire-ssh-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn have(program: &str) -> bool {
    Command::new(program).arg("-V").output().is_ok()
        || Command::new(program).arg("--help").output().is_ok()
}

#[test]
fn ssh_keygen_finds_the_known_hosts_line() {
    if !have("ssh-keygen") {
        eprintln!("ssh-keygen not installed; skipped");
        return;
    }
    let dir = scratch("keygen");
    for (host, port) in [
        ("builder", None),
        ("builder", Some(2222)),
        ("::1", Some(22)),
    ] {
        let file = dir.join("known_hosts");
        std::fs::write(&file, format!("{}\n", known_hosts_line(host, port, &key())))
            .expect("write");
        let name = match port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host.to_owned(),
        };
        let out = Command::new("ssh-keygen")
            .arg("-F")
            .arg(&name)
            .arg("-f")
            .arg(&file)
            .output()
            .expect("ssh-keygen");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(ED25519_KEY),
            "ssh-keygen -F {name}: {out:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn argv_for_a_plain_store() {
    let inv = invocation(&ssh("ssh://builder"), &SshOptions::default()).expect("invocation");
    assert_eq!(
        inv,
        Invocation {
            program: "ssh".to_owned(),
            args: words(&[
                "-x",
                "-a",
                "-T",
                "-oBatchMode=yes",
                "-oConnectTimeout=60",
                "-oTCPKeepAlive=yes",
                "-oServerAliveInterval=15",
                "-oServerAliveCountMax=3",
                "-oControlMaster=no",
                "-oControlPath=none",
                "-oPermitLocalCommand=no",
                "builder",
                "--",
                "nix-store --serve --write",
            ]),
            known_hosts: None,
        }
    );
    assert_eq!(inv.argv()[0], "ssh");
    assert_eq!(inv.argv()[1..], inv.args[..]);
}

#[test]
fn argv_for_a_command_of_the_hosts() {
    // Everything but the remote command is the store's invocation; the
    // command is the one given, quoted as the remote shell reads it back.
    let store = ssh(&pinned_uri());
    let options = SshOptions {
        known_hosts_file: Some("/run/nixwire/conn-2/known_hosts".into()),
        ..SshOptions::default()
    };
    let command = words(&["/opt/replay", "/srv/a transcript.json"]);
    let given = invocation_for(&store, &options, &command).expect("invocation");
    let usual = invocation(&store, &options).expect("invocation");
    let (last, rest) = given.args.split_last().expect("a command");
    assert_eq!(last, "/opt/replay '/srv/a transcript.json'");
    assert_eq!(rest, &usual.args[..usual.args.len() - 1]);
    assert_eq!(given.known_hosts, usual.known_hosts);
    assert_eq!(
        invocation_for(&store, &options, &remote_command(&store)).expect("invocation"),
        usual
    );
    // The same checks as the store's own command.
    let unpinned = SshOptions::default();
    assert!(matches!(
        invocation_for(&store, &unpinned, &command),
        Err(SshError::NoKnownHostsFile { .. })
    ));
}

fn pinned_uri() -> String {
    format!(
        "ssh-ng://nix@[::1]:2222?ssh-key=/etc/nix/id_builder&compress=true&remote-store=/home/nix/my%20store&base64-ssh-public-host-key={}",
        key().to_base64()
    )
}

#[test]
fn argv_for_a_pinned_store() {
    let options = SshOptions {
        program: "/usr/bin/ssh".to_owned(),
        connect_timeout: Some(Duration::from_millis(2500)),
        server_alive_interval: None,
        known_hosts_file: Some("/run/nixwire/conn-1/known_hosts".into()),
        control_path: Some("/run/nixwire/conn-1/master.sock".into()),
        extra: words(&["-oProxyJump=jump", "-4"]),
        verbose: true,
        ..SshOptions::default()
    };
    let inv = invocation(&ssh(&pinned_uri()), &options).expect("invocation");
    assert_eq!(
        inv,
        Invocation {
            program: "/usr/bin/ssh".to_owned(),
            args: words(&[
                "-p",
                "2222",
                "-i",
                "/etc/nix/id_builder",
                "-x",
                "-a",
                "-T",
                "-oBatchMode=yes",
                "-oConnectTimeout=3",
                "-oTCPKeepAlive=yes",
                "-oControlMaster=no",
                "-oControlPath=/run/nixwire/conn-1/master.sock",
                "-oPermitLocalCommand=no",
                "-C",
                "-oUserKnownHostsFile=/run/nixwire/conn-1/known_hosts",
                "-oGlobalKnownHostsFile=/dev/null",
                "-oStrictHostKeyChecking=yes",
                "-oHostKeyAlias=[::1]:2222",
                "-oCheckHostIP=no",
                "-v",
                "-oProxyJump=jump",
                "-4",
                "nix@::1",
                "--",
                "nix-daemon --stdio --store '/home/nix/my store'",
            ]),
            known_hosts: Some(format!("[::1]:2222 {ED25519_KEY}\n")),
        }
    );
}

#[test]
fn argv_without_timeouts() {
    let options = SshOptions {
        connect_timeout: None,
        server_alive_interval: Some(Duration::ZERO),
        server_alive_count_max: 5,
        ..SshOptions::default()
    };
    let inv = invocation(&ssh("ssh://h:22"), &options).expect("invocation");
    assert!(!inv.args.iter().any(|a| a.starts_with("-oConnectTimeout")));
    assert!(inv.args.contains(&"-oServerAliveInterval=1".to_owned()));
    assert!(inv.args.contains(&"-oServerAliveCountMax=5".to_owned()));
    assert_eq!(inv.args[..2], words(&["-p", "22"])[..]);
}

#[test]
fn invocation_errors() {
    let store = ssh(&pinned_uri());
    let e = invocation(&store, &SshOptions::default()).expect_err("no file");
    assert!(matches!(e, SshError::NoKnownHostsFile { .. }));
    assert!(
        e.to_string().contains("SshOptions::known_hosts_file"),
        "{e}"
    );

    for bad in ["known_hosts", "/tmp/a b", "/tmp/%h", "/tmp/\"q", "~/kh"] {
        let options = SshOptions {
            known_hosts_file: Some(bad.into()),
            ..SshOptions::default()
        };
        let e = invocation(&store, &options).expect_err("bad path");
        assert!(
            matches!(e, SshError::Path { what: "known_hosts_file", ref path, .. } if path == Path::new(bad)),
            "{bad}: {e:?}"
        );
    }
    let options = SshOptions {
        control_path: Some("relative.sock".into()),
        ..SshOptions::default()
    };
    let e = invocation(&ssh("ssh://h"), &options).expect_err("bad path");
    assert_eq!(
        e.to_string(),
        "bad control_path path `relative.sock`: expected an absolute UTF-8 path without whitespace, quotes, backslashes or `%`"
    );

    let mut hand_built = SshStore::new(RemoteProtocol::Serve, "-oProxyCommand=touch /tmp/x");
    let e = invocation(&hand_built, &SshOptions::default()).expect_err("bad host");
    assert!(matches!(e, SshError::Destination { part: "host", .. }));
    hand_built.host = "h".to_owned();
    hand_built.user = Some("-oProxyCommand=x".to_owned());
    let e = invocation(&hand_built, &SshOptions::default()).expect_err("bad user");
    assert!(matches!(e, SshError::Destination { part: "user", .. }));
    assert!(
        e.to_string().starts_with("bad ssh user `-oProxyCommand=x`"),
        "{e}"
    );
}

/// `ssh -G` prints the configuration ssh would use, without connecting:
/// every option is one ssh knows, and ours win over `NIX_SSHOPTS`.
#[test]
fn ssh_accepts_the_argv() {
    if !have("ssh") {
        eprintln!("ssh not installed; skipped");
        return;
    }
    let options = SshOptions {
        known_hosts_file: Some("/run/nixwire/known_hosts".into()),
        extra: split_sshopts("-oConnectTimeout=5 -oStrictHostKeyChecking=no").expect("split"),
        ..SshOptions::default()
    };
    // ssh lists an identity file only if it exists.
    let dir = scratch("ssh-g");
    let identity = dir.join("id_builder");
    std::fs::write(&identity, "").expect("write");
    let mut store = ssh(&pinned_uri().replace("[::1]", "Builder"));
    store.params.ssh_key = Some(identity.clone());
    let inv = invocation(&store, &options).expect("invocation");
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-G"])
        .args(&inv.args)
        .output()
        .expect("ssh -G");
    assert!(out.status.success(), "ssh -G: {out:?}");
    let config = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for line in [
        "user nix",
        "hostname builder",
        "port 2222",
        "batchmode yes",
        "connecttimeout 60",
        "serveraliveinterval 15",
        "serveralivecountmax 3",
        "stricthostkeychecking true",
        "userknownhostsfile /run/nixwire/known_hosts",
        "globalknownhostsfile /dev/null",
        "hostkeyalias [builder]:2222",
        "checkhostip no",
        "controlmaster false",
        "permitlocalcommand no",
        "requesttty false",
        "forwardagent no",
        "forwardx11 no",
        "compression yes",
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "`ssh -G` lacks `{line}`:\n{config}"
        );
    }
    let identity = format!("identityfile {}", identity.display()).to_lowercase();
    assert!(
        config.lines().any(|l| l == identity),
        "`ssh -G` lacks `{identity}`"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn nix_sshopts_go_into_the_runtime_options_after_nixwires_own() {
    let options = nixwire_core::runtime::Options::default()
        .with_nix_sshopts("-oConnectTimeout=5 -i '/a key'")
        .expect("splits");
    assert_eq!(options.ssh.extra, ["-oConnectTimeout=5", "-i", "/a key"]);
    let err = nixwire_core::runtime::Options::default()
        .with_nix_sshopts("-o 'unclosed")
        .expect_err("unbalanced");
    assert!(err.to_string().contains("quote"), "{err}");
}

#[test]
fn the_config_file_says_what_the_argv_says_and_keeps_the_users_files() {
    let store = ssh("ssh-ng://nix@builder:2222?ssh-key=/k/id&compress=true");
    let options = SshOptions {
        extra: words(&["-o", "ProxyJump=gate", "-4"]),
        ..SshOptions::default()
    };
    let config = nixwire_core::ssh::config_file(&store, &options).expect("config");
    assert_eq!(config.destination, "builder");
    let lines: Vec<&str> = config.text.lines().collect();
    for want in [
        "Port 2222",
        "IdentityFile /k/id",
        "ForwardX11 no",
        "ForwardAgent no",
        "BatchMode yes",
        "ConnectTimeout 60",
        "ServerAliveInterval 15",
        "ServerAliveCountMax 3",
        "ControlMaster no",
        "Compression yes",
        "ProxyJump gate",
        "AddressFamily inet",
        "User nix",
    ] {
        assert!(
            lines.contains(&want),
            "{want:?} missing from:\n{}",
            config.text
        );
    }
    // The user's files come last: ssh keeps the first value it reads.
    assert_eq!(
        lines[lines.len() - 2..],
        ["Include ~/.ssh/config", "Include /etc/ssh/ssh_config"]
    );
    assert!(config.known_hosts.is_none());
}

#[test]
fn a_word_a_config_file_cannot_say_is_refused_by_name() {
    let store = ssh("ssh://builder");
    let options = SshOptions {
        extra: words(&["-L", "80:x:80"]),
        ..SshOptions::default()
    };
    let err = nixwire_core::ssh::config_file(&store, &options).expect_err("refused");
    assert!(err.to_string().contains("\"-L\""), "{err}");
}
