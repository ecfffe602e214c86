//! nixwire-core stays sans-IO: no sockets, processes, files, threads, clocks
//! or async runtimes in its code (doc comments, which show drivers, aside),
//! and no runtime among its dependencies.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::process",
    "std::fs",
    "std::thread",
    "Instant::now",
    "SystemTime",
    "tokio",
    "async_std",
    "smol",
    "async fn",
    ".await",
];

/// `word` in `line`, not as the start of a longer name (`.awaiting`).
fn contains_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !line[i + word.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if contains_word(code, word) {
                    found.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
    }
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut found = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "I/O in the sans-IO core:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_core_depends_on_no_runtime() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or_default();
    for runtime in [
        "tokio", "smol", "async-", "futures", "mio", "ssh2", "openssh",
    ] {
        assert!(!deps.contains(runtime), "nixwire-core depends on {runtime}");
    }
}
