//! `nixwire machines check` and `select` run as a user would run them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Runs nixwire in the test data directory, where the sample's relative
/// `@include` resolves (Nix resolves includes against the working directory).
fn nixwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixwire"))
        .args(args)
        .current_dir(data())
        .output()
        .unwrap_or_else(|e| panic!("cannot run nixwire: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_json_lists_effective_machines_with_the_documented_keys() {
    let o = nixwire(&[
        "machines",
        "check",
        "machines",
        "--json",
        "--default-system",
        "x86_64-linux",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    let arr = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(arr.len(), 5);
    let keys: Vec<&str> = arr[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut want = vec![
        "uri",
        "systems",
        "ssh_key",
        "max_jobs",
        "speed_factor",
        "supported_features",
        "mandatory_features",
        "ssh_public_host_key",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(arr[0]["uri"], "ssh://nix@builder-a.example");
    assert_eq!(arr[0]["max_jobs"], 8);
    assert_eq!(arr[0]["speed_factor"], 2.0);
    assert_eq!(arr[1]["uri"], "ssh-ng://builder-b");
    assert_eq!(arr[1]["ssh_key"], serde_json::Value::Null);
    assert_eq!(arr[1]["ssh_public_host_key"], serde_json::Value::Null);
    assert_eq!(
        arr[2]["mandatory_features"],
        serde_json::json!(["benchmark"])
    );
    assert_eq!(arr[2]["speed_factor"], 1.0);
    // From the include: `local` keeps its form, speed 0 means 1.
    assert_eq!(arr[3]["uri"], "local");
    assert_eq!(arr[3]["speed_factor"], 1.0);
    assert_eq!(
        arr[4]["systems"],
        serde_json::json!(["aarch64-darwin", "x86_64-darwin"])
    );
    let err = stderr(&o);
    assert!(
        err.contains("warning: machines:5:106: mandatory feature(s) benchmark"),
        "{err}"
    );
    assert!(
        err.contains("warning: includes/machines.more:2:24: speed factor"),
        "{err}"
    );
}

#[test]
fn check_prints_a_table() {
    let o = nixwire(&["machines", "check", "machines"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[0].starts_with("URI "), "{out}");
    assert!(
        lines[1].starts_with("ssh://nix@builder-a.example "),
        "{out}"
    );
    assert!(lines[5].ends_with("includes/machines.more:2"), "{out}");
}

#[test]
fn check_reads_lix_toml() {
    let o = nixwire(&["machines", "check", "machines.toml", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v.as_array().map(Vec::len),
        Some(1),
        "disabled machine dropped: {v}"
    );
    assert_eq!(
        v[0]["ssh_public_host_key"],
        "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUdvb2Q="
    );
}

#[test]
fn check_fails_with_the_precise_error() {
    let o = nixwire(&["machines", "check", "bad-jobs"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o).trim_end(),
        "error: bad-jobs:2:28: bad machine specification: column #4 (max jobs) is `four`, expected an unsigned integer below 2^32 (or `-` for 1)"
    );
}

#[test]
fn check_budgets_are_flags() {
    let o = nixwire(&["machines", "check", "machines", "--max-machines", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("machines:5:1: too many machines: this entry, in machines, would be machine number 3, expected at most 2"),
        "{err}"
    );

    let o = nixwire(&["machines", "check", "machines", "--max-include-reads", "0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("too many included files: `includes/machines.more`, included via machines"),
        "{err}"
    );
}

#[test]
fn check_fails_on_a_missing_file() {
    let o = nixwire(&["machines", "check", "no-such-file"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read no-such-file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn select_prints_the_chosen_machine() {
    let o = nixwire(&["machines", "select", "machines", "--system", "x86_64-linux"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Idle machines tie on load; builder-a has the highest speed.
    assert_eq!(stdout(&o), "ssh://nix@builder-a.example\n");

    let o = nixwire(&[
        "machines",
        "select",
        "machines",
        "--system",
        "x86_64-linux",
        "--features",
        "benchmark",
    ]);
    assert_eq!(stdout(&o), "ssh://bench.example\n");

    let o = nixwire(&[
        "machines",
        "select",
        "machines",
        "--system",
        "aarch64-darwin",
    ]);
    assert_eq!(stdout(&o), "ssh://mac.example\n");
}

#[test]
fn select_explains_why_no_machine_can() {
    let o = nixwire(&[
        "machines",
        "select",
        "machines",
        "--system",
        "x86_64-linux",
        "--features",
        "kvm,gpu",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.starts_with("error: no machine supports this step:"),
        "{err}"
    );
    assert!(
        err.contains("ssh://nix@builder-a.example: does not support feature(s) gpu"),
        "{err}"
    );
    assert!(
        err.contains(
            "ssh://bench.example: has mandatory feature(s) benchmark that the step does not require"
        ),
        "{err}"
    );
    assert!(
        err.contains("ssh-ng://builder-b: does not build for x86_64-linux"),
        "{err}"
    );
}
