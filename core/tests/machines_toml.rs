//! Lix's TOML machines format, against the cases of Lix's own tests
//! (rewritten from the facts they check) and format detection.
#![cfg(feature = "machines")]

use std::collections::BTreeSet;

use nixwire_core::machines::{Format, MachinesError, MachinesFile, NoFiles, ParseOptions, parse};

const ARCH: &str = "TEST_ARCH-TEST_OS";

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn ok(text: &str) -> MachinesFile {
    match parse(
        "machines.toml",
        text,
        &ParseOptions::with_default_system(ARCH),
        &NoFiles,
    ) {
        Ok(f) => f,
        Err(e) => panic!("unexpected error for {text:?}: {e}"),
    }
}

fn err(text: &str) -> MachinesError {
    match parse(
        "machines.toml",
        text,
        &ParseOptions::with_default_system(ARCH),
        &NoFiles,
    ) {
        Ok(f) => panic!("expected an error for {text:?}, got {:?}", f.machines),
        Err(e) => e,
    }
}

fn toml_error(e: &MachinesError) -> (usize, usize, &str, &str) {
    match e {
        MachinesError::Toml { at, token, message } => {
            (at.line, at.column, token.as_str(), message.as_str())
        }
        other => panic!("expected a TOML error, got {other:?}"),
    }
}

#[test]
fn uri_only_takes_defaults() {
    let f = ok("[machines.andesite]\nuri = \"ssh://lix@andesite.lix.systems\"\n");
    assert_eq!(f.format, Format::Toml);
    assert_eq!(f.machines.len(), 1);
    let p = &f.machines[0];
    assert_eq!(p.name.as_deref(), Some("andesite"));
    assert_eq!(p.at.line, 1);
    let m = &p.machine;
    assert_eq!(m.uri, "ssh://lix@andesite.lix.systems");
    assert_eq!(m.systems, set(&[ARCH]));
    assert_eq!(m.ssh_key, None);
    assert_eq!(m.max_jobs, 1);
    assert_eq!(m.speed_factor, 1.0);
    assert!(m.supported_features.is_empty() && m.mandatory_features.is_empty());
    assert_eq!(m.ssh_public_host_key, None);
}

#[test]
fn machines_come_in_file_order() {
    let f = ok(
        "[machines.zeta]\nuri = \"nix@zeta\"\n[machines.alpha]\nuri = \"nix@alpha\"\n[machines.mid]\nuri = \"nix@mid\"\n",
    );
    let names: Vec<_> = f
        .machines
        .iter()
        .filter_map(|m| m.name.as_deref())
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    // A schemeless URI is completed as in the line format.
    assert_eq!(f.machines[1].machine.uri, "ssh://nix@alpha");
    assert_eq!(f.machines[2].at.line, 5);
}

#[test]
fn complete_machine_encodes_host_key() {
    let f = ok(r#"
        [machines.scratchy]
        uri = "nix@scratchy.labs.cs.uu.nl"
        system-types = ["i686-linux"]
        ssh-key = "/home/nix/.ssh/id_scratchy_auto"
        jobs = 8
        speed-factor = 3.0
        supported-features = ["kvm"]
        mandatory-features = ["benchmark"]
        ssh-public-host-key = "ssh-ed25519 AAAAC3Nza nix@scratchy"
    "#);
    let m = &f.machines[0].machine;
    assert_eq!(m.uri, "ssh://nix@scratchy.labs.cs.uu.nl");
    assert_eq!(m.systems, set(&["i686-linux"]));
    assert_eq!(
        m.ssh_key.as_deref(),
        Some("/home/nix/.ssh/id_scratchy_auto")
    );
    assert_eq!(m.max_jobs, 8);
    assert_eq!(m.speed_factor, 3.0);
    assert_eq!(m.supported_features, set(&["kvm"]));
    assert_eq!(m.mandatory_features, set(&["benchmark"]));
    assert_eq!(
        m.ssh_public_host_key.as_deref(),
        Some("c3NoLWVkMjU1MTkgQUFBQUMzTnphIG5peEBzY3JhdGNoeQ==")
    );
}

#[test]
fn speed_factor_may_be_integer_or_float() {
    let f = ok("[machines.a]\nuri = \"a\"\nspeed-factor = 3\n");
    assert_eq!(f.machines[0].machine.speed_factor, 3.0);
    let f = ok("[machines.a]\nuri = \"a\"\nspeed-factor = 3.1\n");
    assert_eq!(f.machines[0].machine.speed_factor, 3.1);
    let f = ok("[machines.a]\nuri = \"a\"\nspeed-factor = 0\n");
    assert_eq!(f.machines[0].machine.speed_factor, 1.0);
}

#[test]
fn bad_speed_factors_are_errors() {
    for v in ["-1", "nan", "inf"] {
        let e = err(&format!("[machines.a]\nuri = \"a\"\nspeed-factor = {v}\n"));
        let (line, column, token, message) = toml_error(&e);
        assert_eq!((line, column, token), (3, 16, v), "speed {v}");
        assert!(message.contains("speed-factor"), "{message}");
    }
}

#[test]
fn unknown_key_is_rejected_with_its_location() {
    let e = err("[machines.andesite]\nuri = \"ssh://a\"\nextra-key = 3\n");
    let (line, column, token, message) = toml_error(&e);
    assert_eq!((line, column, token), (3, 1, "extra-key"));
    assert!(message.contains("unknown field `extra-key`"), "{message}");
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let e = err("versoin = 1\n[machines.a]\nuri = \"a\"\n");
    let (line, _, token, message) = toml_error(&e);
    assert_eq!((line, token), (1, "versoin"));
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn unquoted_uri_reports_the_toml_error_not_garbage_machines() {
    // Read as lines, this would be machines `[machines.a]` and `uri` with
    // system `=`; the `=` shows the text was meant as TOML.
    let e = err("[machines.a]\nuri = ssh://whoops.forgotten.quotes\nspeed-factor = 3\n");
    let (line, column, _, _) = toml_error(&e);
    assert_eq!((line, column), (2, 7));
}

#[test]
fn missing_uri_is_an_error_naming_the_machine() {
    let e = err("[machines.a]\njobs = 2\n");
    let (line, _, _, message) = toml_error(&e);
    assert_eq!(line, 1);
    assert!(message.contains("machine `a`: missing `uri`"), "{message}");
    let e = err("[machines.b]\nuri = \"\"\n");
    assert!(toml_error(&e).3.contains("`uri` is empty"));
}

#[test]
fn wrongly_typed_values_are_errors() {
    let e = err("[machines.s]\nuri = \"a\"\njobs = -3\n");
    let (line, column, token, message) = toml_error(&e);
    assert_eq!((line, column, token), (3, 8, "-3"));
    assert!(message.contains("u32"), "{message}");

    let e = err("[machines.s]\nuri = \"a\"\njobs = \"three\"\n");
    assert!(toml_error(&e).3.contains("invalid type: string"));

    let e = err("[[machines]]\nuri = \"a\"\n[[machines]]\nuri = \"b\"\n");
    assert!(toml_error(&e).3.contains("invalid type: sequence"));

    let e = err("version = 1\n[machines.legacy]\nuri = \"a\"\nenable = 0\n");
    assert!(toml_error(&e).3.contains("expected a boolean"));
}

#[test]
fn versions_other_than_1_are_refused() {
    for (v, want) in [
        ("42", "unsupported version 42"),
        ("0", "unsupported version 0"),
    ] {
        let e = err(&format!("version = {v}\nmachines = {{}}\n"));
        let (line, column, token, message) = toml_error(&e);
        assert_eq!((line, column, token), (1, 11, v));
        assert!(message.contains(want), "{message}");
    }
    let e = err("version = \"hello\"\nmachines = {}\n");
    assert!(toml_error(&e).3.contains("invalid type: string"));
    assert!(ok("version = 1\nmachines = {}\n").machines.is_empty());
}

#[test]
fn disabled_machines_are_dropped() {
    let f = ok(
        "version = 1\n[machines.a]\nuri = \"ssh://test\"\nenable = false\n[machines.b]\nuri = \"ssh://test2\"\nenabled = true\n",
    );
    let uris: Vec<_> = f.machines.iter().map(|m| m.machine.uri.as_str()).collect();
    assert_eq!(uris, ["ssh://test2"]);
}

#[test]
fn disabled_machine_without_uri_is_still_an_error() {
    // Lix checks a disabled machine in full before dropping it.
    for key in ["enable", "enabled"] {
        let e = err(&format!(
            "[machines.ok]\nuri = \"ssh://ok\"\n[machines.off]\njobs = 2\n{key} = false\n"
        ));
        let (line, column, _, message) = toml_error(&e);
        assert_eq!((line, column), (3, 1), "{key}");
        assert!(
            message.contains("machine `off`: missing `uri`"),
            "{message}"
        );
    }
}

#[test]
fn disabled_machine_with_negative_speed_is_still_an_error() {
    for key in ["enable", "enabled"] {
        let e = err(&format!(
            "[machines.off]\nuri = \"ssh://off\"\nspeed-factor = -2\n{key} = false\n"
        ));
        let (line, column, token, message) = toml_error(&e);
        assert_eq!((line, column, token), (3, 16, "-2"), "{key}");
        assert!(
            message.contains("machine `off`: `speed-factor`"),
            "{message}"
        );
    }
}

#[test]
fn empty_or_comment_only_text_is_the_line_format_with_no_machines() {
    for text in ["", "# nothing here\n", "\n\n"] {
        let f = ok(text);
        assert_eq!(f.format, Format::Lines);
        assert!(f.machines.is_empty());
    }
}

#[test]
fn bare_words_fall_back_to_lines() {
    let f = ok("a\nb");
    assert_eq!(f.format, Format::Lines);
    let uris: Vec<_> = f.machines.iter().map(|m| m.machine.uri.as_str()).collect();
    assert_eq!(uris, ["ssh://a", "ssh://b"]);
}

#[test]
fn invalid_in_both_formats_reports_both() {
    let e = err("[machines.a]\nuri = \"a\"\njobs = 2\nnotoml - - eight\n");
    match &e {
        MachinesError::NeitherFormat { legacy, toml } => {
            assert!(
                matches!(**legacy, MachinesError::BadColumn { .. }),
                "{legacy:?}"
            );
            assert!(matches!(**toml, MachinesError::Toml { .. }), "{toml:?}");
        }
        other => panic!("expected both errors, got {other:?}"),
    }
    let shown = e.to_string();
    assert!(
        shown.contains("column #4 (max jobs)") && shown.contains("read as TOML"),
        "{shown}"
    );
}

#[test]
fn toml_include_is_detected_inside_a_line_file() {
    let files = |p: &std::path::Path| -> std::io::Result<Option<String>> {
        Ok((p == std::path::Path::new("/etc/nix/machines.toml"))
            .then(|| "[machines.t]\nuri = \"ssh://t\"\n".to_owned()))
    };
    let f = parse(
        "<builders>",
        "ssh://a x ; @/etc/nix/machines.toml",
        &ParseOptions::default(),
        &files,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.format, Format::Lines);
    let uris: Vec<_> = f.machines.iter().map(|m| m.machine.uri.as_str()).collect();
    assert_eq!(uris, ["ssh://a", "ssh://t"]);
    assert_eq!(f.machines[1].at.file, "/etc/nix/machines.toml");
}

/// Each machine's location used to be computed from the start of the text,
/// which made a file of many machines quadratic (seconds for 20,000).
#[test]
fn locations_of_20000_machines() {
    const MACHINES: usize = 20_000;
    let mut text = String::new();
    for i in 0..MACHINES {
        text.push_str(&format!("[machines.m{i}]\nuri = \"ssh://m{i}\"\n"));
    }
    let f = ok(&text);
    assert_eq!(f.machines.len(), MACHINES);
    let last = &f.machines[MACHINES - 1];
    assert_eq!(last.name.as_deref(), Some("m19999"));
    assert_eq!((last.at.line, last.at.column), (2 * MACHINES - 1, 1));
}
