//! `nixwire build` under load, the small version of `benches/load/run.sh`:
//! 16 derivations (2 failing, 3 depending on others, one of those on a
//! failing one) over 4 chroot stores behind the loopback sshd, 2 slots
//! each, and one of the builders killed mid-way: its `remote-program` is a
//! wrapper that refuses to start once a flag file exists, and its running
//! `nix-store --serve` processes are killed. The builds it was running
//! must fail as machine failures and be built elsewhere, it must be backed
//! off, and every other outcome must be what the derivation says.
//!
//! Without Nix or the sshd the test says why and passes, unless `CI=true`
//! or `NIXWIRE_REQUIRE_NIX=1` (see `nixwire-testkit`).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nixwire_core::session::Protocol;
use nixwire_testkit as kit;

/// Independent derivations (two of them failing), then dependents.
const LEAVES: usize = 13;
const FAILING: [usize; 2] = [4, 9];

/// The Nix expression: an attribute set `lN` (built), `fN` (exits 1), `dK`
/// (built from two leaves; `d3` from a failing one).
fn expression(run: u64) -> String {
    let mut expr = format!(
        "let mk = name: sleep: code: inputs: derivation {{ name = \"load-${{name}}\"; \
         system = builtins.currentSystem; builder = \"/bin/sh\"; run = \"{run}\"; \
         args = [ \"-c\" \"echo start-${{name}}; /bin/sleep ${{sleep}}; \
         echo ${{name}} ${{toString inputs}} > $out; exit ${{code}}\" ]; }}; in rec {{ "
    );
    for i in 1..=LEAVES {
        // 0.6 to 1.4 s: builds overlap, and some run when the kill comes.
        let sleep = format!("{}.{}", (6 + 2 * (i % 5)) / 10, (6 + 2 * (i % 5)) % 10);
        if FAILING.contains(&i) {
            expr.push_str(&format!("f{i} = mk \"f{i}\" \"{sleep}\" \"1\" []; "));
        } else {
            expr.push_str(&format!("l{i} = mk \"l{i}\" \"{sleep}\" \"0\" []; "));
        }
    }
    expr.push_str("d1 = mk \"d1\" \"0.3\" \"0\" [ l1 l2 ]; ");
    expr.push_str("d2 = mk \"d2\" \"0.3\" \"0\" [ l3 l5 ]; ");
    expr.push_str("d3 = mk \"d3\" \"0.3\" \"0\" [ l6 f9 ]; }");
    expr
}

/// Whether `path` is valid in `root` and its contents match, by Nix.
fn verified(root: &Path, path: &str) -> bool {
    kit::verify_path(root, path).is_ok()
}

/// The name of the builder a `building '…' on 'M'...` or `error: building
/// '…' on 'M': …` line names (`builder-N`), if any.
fn builder_of(line: &str) -> Option<&str> {
    let at = line.find("/builder-")?;
    line.get(at + 1..at + 10)
}

#[test]
fn many_builds_over_four_builders_survive_one_builder_killed_mid_way() {
    if !kit::have_nix() {
        return;
    }
    let Some(sshd) = kit::Sshd::from_env() else {
        return;
    };
    let dir = kit::scratch("cli-load");
    let local = dir.join("local");
    let local_s = local.display().to_string();

    // Four machines behind the sshd, each with its own store and a
    // remote program that refuses to start once its flag exists.
    let mut machines = String::new();
    for i in 1..=4 {
        let wrapper = dir.join(format!("serve-{i}"));
        let flag = dir.join(format!("dead-{i}"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ -e '{}' ]; then echo 'builder {i} is down' >&2; exit 1; fi\n\
                 exec nix-store \"$@\"\n",
                flag.display()
            ),
        )
        .expect("write the wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the wrapper");
        let uri = sshd.uri(Protocol::Serve, &dir.join(format!("builder-{i}")));
        let uri = uri.split("&ssh-key").next().unwrap_or_default();
        machines.push_str(&format!(
            "{uri}&remote-program={} x86_64-linux {} 2 1 - - {}\n",
            wrapper.display(),
            sshd.key.display(),
            sshd.host_key
        ));
    }
    let machines_file = dir.join("machines");
    std::fs::write(&machines_file, machines).expect("write the machines file");

    // The derivations, by name.
    let expr = expression(kit::unique_number());
    let listed = kit::run_nix("nix-instantiate", &["--store", &local_s, "-E", &expr]);
    let drvs: Vec<(String, String)> = listed
        .lines()
        .filter_map(|drv| {
            let name = drv.rsplit_once("-load-")?.1.strip_suffix(".drv")?;
            Some((name.to_owned(), drv.to_owned()))
        })
        .collect();
    assert_eq!(drvs.len(), 16, "{listed}");

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(["-v", "build", "-k", "--machines"])
        .arg(&machines_file)
        .args(["--local-store", &local_s])
        .args(drvs.iter().map(|(_, d)| d))
        .envs(kit::nix_env())
        .env_remove("NIX_SSHOPTS")
        .env_remove("NIX_REMOTE_SYSTEMS")
        .env_remove("NIX_REMOTE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nixwire build");
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        let mut stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = seen.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        })
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let text = || seen.lock().map(|s| s.clone()).unwrap_or_default();

    // Once six builds have started, two of them on builder 4, builder 4
    // goes down: the flag first (no new connection starts), then its
    // running servers are killed.
    let server = format!(
        "nix-store --serve --write --store {}",
        dir.join("builder-4").display()
    );
    let mut killed_at = None;
    let limit = Instant::now() + Duration::from_secs(60);
    while killed_at.is_none() && Instant::now() < limit {
        let now = text();
        let starts: Vec<&str> = now
            .lines()
            .filter(|l| l.starts_with("building '"))
            .collect();
        let on_four = starts
            .iter()
            .filter(|l| builder_of(l) == Some("builder-4"))
            .count();
        let pids = kit::processes_with(&server);
        if starts.len() >= 6 && on_four >= 2 && !pids.is_empty() {
            std::fs::write(dir.join("dead-4"), b"").expect("the flag");
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            // The shell's own `kill`: a fresh machine may lack procps.
            let kill = Command::new("/bin/sh")
                .args(["-c", &format!("kill -9 {}", list.join(" "))])
                .status()
                .expect("kill -9");
            assert!(kill.success());
            killed_at = Some(now.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = killed_at.unwrap_or_else(|| panic!("builder 4 never ran: {}", text()));

    let end = Instant::now() + Duration::from_secs(90);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nixwire build did not end: {}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let _ = reader.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = text();
    eprintln!("load: {:.1} s", took.as_secs_f64());
    // A builder failed: Nix's 100.
    assert_eq!(code, Some(100), "{stderr}");

    let drv_of = |name: &str| {
        drvs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    // The failing ones: named in an error and not built; the dependent of
    // one not built because of it; everything else built and valid here.
    for (name, drv) in &drvs {
        let output = kit::run_nix("nix-store", &["--store", &local_s, "-q", "--outputs", drv]);
        let output = output.trim();
        if name.starts_with('f') {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(&format!("error: building '{drv}'"))
                        && l.contains("the build failed")),
                "{name}: no error line: {stderr}"
            );
            assert!(stderr.contains(&format!("{drv} was not built")), "{stderr}");
            assert!(!kit::is_valid(&local, &kit::store_path(output)), "{name}");
        } else if name == "d3" {
            let f9 = drv_of("f9");
            assert!(
                stderr.contains(&format!(
                    "{drv} was not built: its dependency {} was not built",
                    f9.trim_start_matches("/nix/store/")
                )),
                "d3: {stderr}"
            );
        } else {
            assert!(
                stdout.lines().any(|l| l == output),
                "{name} not printed: {stdout}"
            );
            assert!(verified(&local, output), "{name}: {output}: {stderr}");
        }
    }

    // Builder 4's builds broken by the kill: machine failures (not build
    // failures), each built afterwards on another builder.
    let after = stderr.get(killed_at..).unwrap_or_default();
    let broken: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("error: building '") && builder_of(l) == Some("builder-4"))
        .collect();
    assert!(!broken.is_empty(), "no build failed on builder 4: {stderr}");
    for line in &broken {
        assert!(
            !line.contains("the build failed"),
            "a machine failure, not a build failure: {line}"
        );
        let drv = line
            .trim_start_matches("error: building '")
            .split('\'')
            .next()
            .unwrap_or_default();
        let from = after.find(*line).unwrap_or_default();
        let retried = after[from..].lines().any(|l| {
            l.starts_with(&format!("building '{drv}' on"))
                && builder_of(l).is_some_and(|b| b != "builder-4")
        });
        assert!(retried, "{drv} not retried elsewhere: {stderr}");
    }
    // Backed off: said, and no build was built on builder 4 after the kill
    // (it may be tried again after its backoff, and fails then).
    assert!(
        after.contains("serve-4' backed off for"),
        "no backoff: {stderr}"
    );
    let built_on_four_after = after
        .lines()
        .any(|l| l.contains("finished: built") && l.contains("/builder-4"));
    assert!(!built_on_four_after, "{stderr}");
    // Nothing left behind on builder 4.
    assert!(kit::wait_gone(&server, Duration::from_secs(10)).is_empty());
}
