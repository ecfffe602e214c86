//! What the runtimes' live tests share, so that each runtime's tests say
//! only what differs (async or not): real Nix commands in private chroot
//! stores with settings of their own, the loopback sshd of `.ci/sshd.sh`,
//! store URIs for both protocols locally and through ssh, derivations to
//! build, and a look at the process table.
//!
//! Without Nix or the sshd, a test says why and passes, unless `CI=true`
//! or `NIXWIRE_REQUIRE_NIX=1` (set by `.ci/run`), which make that a failure.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fault;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nixwire_core::session::Protocol;
use nixwire_core::store::{BasicDerivation, DerivationOutput, OutputName, StoreDir, StorePath};
use nixwire_core::wire::NixString;

/// Nix's settings for every Nix command the tests run, here or through the
/// sshd (which gets the same file through `.ci/nix`): build as the user
/// running the tests, in a sandbox that sees `/bin/sh`, nothing from the
/// network, nothing offloaded.
pub const NIX_CONF: &str = "\
build-users-group =
sandbox = true
sandbox-paths = /bin /lib /lib64 /usr
substituters =
builders =
experimental-features = nix-command
";

/// Whether a missing component must fail the test rather than skip it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("NIXWIRE_REQUIRE_NIX").is_some()
}

/// A scratch directory for one test, emptied.
///
/// Scratch directories outlive their test binary, so that a failure can be
/// looked at; the first call of a binary removes those of binaries that
/// have exited (each run leaves hundreds of MiB of chroot stores).
pub fn scratch(name: &str) -> PathBuf {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_exited);
    let dir = std::env::temp_dir()
        .join(format!("nixwire-live-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Removes `nixwire-live-PID` and `nixwire-live-conf-PID` under the
/// temporary directory whose process is gone. Best effort: what cannot be
/// removed stays.
fn sweep_exited() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| {
            n.strip_prefix("nixwire-live-conf-")
                .or_else(|| n.strip_prefix("nixwire-live-"))
        }) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        if std::fs::remove_dir_all(&path).is_err() {
            // Store paths are read-only directories; without root their
            // modes must be lifted first.
            let _ = Command::new("chmod")
                .arg("-R")
                .arg("u+w")
                .arg(&path)
                .status();
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// The tests' Nix configuration directory, written once per test binary.
pub fn nix_conf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nixwire-live-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("nix conf dir");
        std::fs::write(dir.join("nix.conf"), NIX_CONF).expect("nix.conf");
        dir
    })
}

/// The environment every Nix program run here gets, in place of the
/// caller's: `NIX_CONF_DIR` replaces /etc/nix, no user configuration.
pub fn nix_env() -> Vec<(String, String)> {
    vec![
        (
            "NIX_CONF_DIR".to_owned(),
            nix_conf_dir().display().to_string(),
        ),
        ("NIX_USER_CONF_FILES".to_owned(), String::new()),
    ]
}

/// A Nix command with the tests' settings.
pub fn nix_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.envs(nix_env())
        .env_remove("NIX_CONFIG")
        .env_remove("NIX_REMOTE");
    cmd
}

/// Whether Nix can be run; if not, says so (and fails when required).
pub fn have_nix() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    let found = *PROBE.get_or_init(|| {
        // `nix --version` opens no store.
        nix_command("nix")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            !required(),
            "Nix is required here but `nix --version` fails"
        );
        eprintln!("skipped: Nix is not installed (apt-get install nix-bin)");
    }
    found
}

/// Runs a Nix program and returns its stdout; panics with its stderr.
pub fn run_nix(program: &str, args: &[&str]) -> String {
    let out = nix_command(program).args(args).output().expect("run nix");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A store path as Nix prints it, parsed.
pub fn store_path(full: &str) -> StorePath {
    StoreDir::default()
        .parse_path(full.trim().as_bytes())
        .unwrap_or_else(|e| panic!("{full:?}: {e}"))
}

/// A store path's full form.
pub fn full(path: &StorePath) -> String {
    StoreDir::default().display_path(path)
}

/// The loopback sshd of `.ci/sshd.sh`, from its `NIXWIRE_SSH_*` variables.
#[derive(Debug, Clone)]
pub struct Sshd {
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Who to log in as.
    pub user: String,
    /// The key to log in with.
    pub key: PathBuf,
    /// Its host key, base64 (a machines file's column 8).
    pub host_key: String,
}

impl Sshd {
    /// The sshd, if the variables are set; if not, says so (and fails when
    /// required).
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let found = (|| {
            Some(Self {
                host: var("NIXWIRE_SSH_HOST")?,
                port: var("NIXWIRE_SSH_PORT")?.parse().ok()?,
                user: var("NIXWIRE_SSH_USER")?,
                key: PathBuf::from(var("NIXWIRE_SSH_KEY")?),
                host_key: var("NIXWIRE_SSH_HOST_KEY")?,
            })
        })();
        if found.is_none() {
            assert!(
                !required(),
                "the loopback sshd is required here: start it with .ci/sshd.sh and export its env"
            );
            eprintln!("skipped: no loopback sshd (.ci/sshd.sh start DIR; set -a; . DIR/env)");
        }
        found
    }

    /// A store URI of `protocol` on this sshd whose remote store is the
    /// chroot store `root`, the host key pinned.
    pub fn uri(&self, protocol: Protocol, root: &Path) -> String {
        self.uri_with_key(protocol, root, &self.host_key)
    }

    /// The same URI without the port, and the `NIX_SSHOPTS` that gives it
    /// instead: how Nix 2.8, which reads no port in a store URI, reaches
    /// this sshd.
    pub fn uri_for_nix(&self, protocol: Protocol, root: &Path) -> (String, String) {
        let uri = self
            .uri(protocol, root)
            .replacen(&format!(":{}?", self.port), "?", 1);
        (uri, format!("-p {}", self.port))
    }

    /// The same with another pinned host key (base64 of a key line).
    pub fn uri_with_key(&self, protocol: Protocol, root: &Path, host_key: &str) -> String {
        let scheme = match protocol {
            Protocol::Serve => "ssh",
            Protocol::Worker => "ssh-ng",
        };
        format!(
            "{scheme}://{}@{}:{}?remote-store={}&ssh-key={}&base64-ssh-public-host-key={}",
            self.user,
            self.host,
            self.port,
            root.display(),
            self.key.display(),
            host_key
        )
    }
}

/// The local program that speaks `protocol` for the chroot store `root`:
/// program and arguments.
pub fn local_server(protocol: Protocol, root: &Path) -> (String, Vec<String>) {
    let root = root.display().to_string();
    match protocol {
        Protocol::Serve => (
            "nix-store".to_owned(),
            vec!["--serve".into(), "--write".into(), "--store".into(), root],
        ),
        Protocol::Worker => (
            "nix-daemon".to_owned(),
            vec!["--stdio".into(), "--store".into(), root],
        ),
    }
}

/// A closure of two paths in the chroot store `root`: a text file, and a
/// built output that refers to it. Returns them, dependency first.
pub fn small_closure(root: &Path, tag: &str) -> Vec<StorePath> {
    let root_s = root.display().to_string();
    let expr = format!(
        "let dep = builtins.toFile \"dep-{tag}\" \"hello from {tag}\"; in \
         derivation {{ name = \"top-{tag}\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"echo ${{dep}} > $out\" ]; }}"
    );
    let top = realise(root, &expr);
    let refs = run_nix(
        "nix-store",
        &["--store", &root_s, "--query", "--references", &full(&top)],
    );
    let mut closure: Vec<StorePath> = refs.lines().map(store_path).collect();
    closure.push(top);
    closure
}

/// A closure of 31 paths in the chroot store `root`: 30 text files, each
/// referring to the one before it (so the order of a copy matters), and a
/// built output referring to the first and the last. Returns them in
/// dependency order, the built output last.
pub fn wide_closure(root: &Path, tag: &str) -> Vec<StorePath> {
    let root_s = root.display().to_string();
    let mut expr = format!("let f0 = builtins.toFile \"dep-{tag}-0\" \"first of {tag}\"; ");
    for i in 1..30 {
        expr.push_str(&format!(
            "f{i} = builtins.toFile \"dep-{tag}-{i}\" \"{i} after ${{f{}}}\"; ",
            i - 1
        ));
    }
    expr.push_str(&format!(
        "in derivation {{ name = \"top-{tag}\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"echo ${{f0}} ${{f29}} > $out\" ]; }}"
    ));
    let top = realise(root, &expr);
    let closure = run_nix(
        "nix-store",
        &["--store", &root_s, "--query", "--requisites", &full(&top)],
    );
    // `--requisites` lists dependencies first.
    closure.lines().map(store_path).collect()
}

/// Instantiates the Nix expression `expr` in the chroot store `root` and
/// builds it there; its output.
fn realise(root: &Path, expr: &str) -> StorePath {
    let root_s = root.display().to_string();
    let drv = run_nix("nix-instantiate", &["--store", &root_s, "-E", expr]);
    let out = run_nix("nix-store", &["--store", &root_s, "--realise", drv.trim()]);
    store_path(out.trim())
}

/// Whether `path` is valid in the chroot store `root`, by Nix's own
/// account.
pub fn is_valid(root: &Path, path: &StorePath) -> bool {
    nix_command("nix-store")
        .args([
            "--store",
            &root.display().to_string(),
            "--check-validity",
            &full(path),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the contents of `path` (in full) in the chroot store `root`
/// match its registered hash, by Nix's own account (`nix-store
/// --verify-path`); if not, why (Nix's stderr).
pub fn verify_path(root: &Path, path: &str) -> Result<(), String> {
    let out = nix_command("nix-store")
        .args([
            "--store",
            &root.display().to_string(),
            "--verify-path",
            path,
        ])
        .output()
        .map_err(|e| format!("nix-store --verify-path: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `nix-store --verify --check-contents` on the chroot store `root`:
/// Nix's own check of its database and of every path's contents. Its
/// exit status and its stderr (where Nix names what it found wrong) are
/// for the caller to judge.
pub fn verify_store(root: &Path) -> std::process::Output {
    nix_command("nix-store")
        .args([
            "--store",
            &root.display().to_string(),
            "--verify",
            "--check-contents",
        ])
        .output()
        .expect("nix-store --verify")
}

/// Asserts that every path of `closure` is valid in the chroot store
/// `root` and its contents match its registered hash, by Nix's account;
/// `what` names the case in the failure.
pub fn all_there(root: &Path, closure: &[StorePath], what: &str) {
    for path in closure {
        assert!(is_valid(root, path), "{what}: {path} is not valid");
        if let Err(stderr) = verify_path(root, &full(path)) {
            panic!("{what}: {path}: {stderr}");
        }
    }
}

/// Instantiates a derivation whose builder runs `script` with `/bin/sh`, in
/// the chroot store `root`, and returns its path and its
/// [`BasicDerivation`] (read back with `nix show-derivation`).
pub fn derivation(root: &Path, name: &str, script: &str) -> (StorePath, BasicDerivation) {
    let root_s = root.display().to_string();
    let expr = format!(
        "derivation {{ name = \"{name}\"; system = builtins.currentSystem; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"{script}\" ]; }}"
    );
    let drv = run_nix("nix-instantiate", &["--store", &root_s, "-E", &expr])
        .trim()
        .to_owned();
    let json: serde_json::Value = serde_json::from_str(&run_nix(
        "nix",
        &["show-derivation", "--store", &root_s, &drv],
    ))
    .expect("derivation JSON");
    let d = &json[&drv];
    let text = |v: &serde_json::Value| NixString::from(v.as_str().unwrap_or_default());
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let outputs = d["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(name, o)| DerivationOutput {
            name: OutputName::new(name).expect("an output name"),
            path: o["path"].as_str().map(store_path),
            hash_algo: NixString::new(),
            hash: NixString::new(),
        })
        .collect();
    let env = d["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (NixString::from(k.as_str()), text(v)))
        .collect();
    let basic = BasicDerivation {
        outputs,
        input_srcs: strings(&d["inputSrcs"])
            .iter()
            .map(|s| store_path(s))
            .collect(),
        platform: text(&d["system"]),
        builder: text(&d["builder"]),
        args: strings(&d["args"])
            .into_iter()
            .map(NixString::from)
            .collect(),
        env,
    };
    (store_path(&drv), basic)
}

/// The processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
        .filter(|pid| *pid != std::process::id())
        .collect()
}

/// Waits up to `limit` for no process to carry `marker`; the ones left.
pub fn wait_gone(marker: &str, limit: std::time::Duration) -> Vec<u32> {
    let end = std::time::Instant::now() + limit;
    loop {
        let left = processes_with(marker);
        if left.is_empty() || std::time::Instant::now() >= end {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Base64 of a public key line, as a machines file's column 8 and the
/// `base64-ssh-public-host-key` parameter hold it.
pub fn host_key_base64(line: &str) -> String {
    data_encoding::BASE64.encode(line.as_bytes())
}

/// A number no other test process here is using, for markers in process
/// tables (a builder's `sleep N`).
pub fn unique_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    700_000 + u64::from(std::process::id() % 10_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Waits up to `limit` for a process carrying `marker`; whether one came.
pub fn wait_for(marker: &str, limit: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if !processes_with(marker).is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// A `nix-daemon` listening on a unix socket of its own, for the chroot
/// store `root` (its state directory, hence its socket, under `dir`);
/// killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: std::process::Child,
    /// The socket it listens on.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits (up to 20 s) for its socket.
    pub fn start(dir: &Path, root: &Path) -> Self {
        let state = dir.join("state");
        let socket = state.join("daemon-socket").join("socket");
        let child = nix_command("nix-daemon")
            .env("NIX_STATE_DIR", &state)
            .args(["--store", &root.display().to_string()])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nix-daemon");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < end,
                "no socket at {}",
                socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, socket }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
