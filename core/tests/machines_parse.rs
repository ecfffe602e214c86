//! The line format against the cases of Nix's own machines tests (rewritten
//! from the facts they check) and against the bugs in the research notes.
#![cfg(feature = "machines")]

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use nixwire_core::machines::{
    Column, DEFAULT_MAX_INCLUDE_READS, DEFAULT_MAX_MACHINES, Format, Machine, MachinesError,
    MachinesFile, NoFiles, ParseOptions, WarningKind, parse, parse::parse_lines,
};

const ARCH: &str = "TEST_ARCH-TEST_OS";

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn nix_opts() -> ParseOptions {
    ParseOptions::with_default_system(ARCH)
}

fn hydra_opts() -> ParseOptions {
    ParseOptions::default()
}

fn ok(text: &str, opts: &ParseOptions) -> MachinesFile {
    match parse("machines", text, opts, &NoFiles) {
        Ok(f) => f,
        Err(e) => panic!("unexpected error for {text:?}: {e}"),
    }
}

fn err(text: &str) -> MachinesError {
    match parse("machines", text, &hydra_opts(), &NoFiles) {
        Ok(f) => panic!("expected an error for {text:?}, got {:?}", f.machines),
        Err(e) => e,
    }
}

fn uris(f: &MachinesFile) -> Vec<&str> {
    f.machines.iter().map(|m| m.machine.uri.as_str()).collect()
}

fn kinds(f: &MachinesFile) -> Vec<&WarningKind> {
    f.warnings.iter().map(|w| &w.kind).collect()
}

/// Files in memory, for includes.
struct Files(BTreeMap<&'static str, &'static str>);

impl nixwire_core::machines::FileSource for Files {
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        let key = path.to_str().unwrap_or_default();
        if key == "/unreadable" {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied"));
        }
        Ok(self.0.get(key).map(|s| (*s).to_owned()))
    }
}

fn with_files(
    text: &str,
    files: &[(&'static str, &'static str)],
) -> Result<MachinesFile, MachinesError> {
    parse(
        "machines",
        text,
        &hydra_opts(),
        &Files(files.iter().copied().collect()),
    )
}

// --- Nix's own cases -------------------------------------------------------

#[test]
fn empty_text_gives_no_machines() {
    assert!(ok("", &nix_opts()).machines.is_empty());
}

#[test]
fn uri_only_takes_every_default() {
    let f = ok("nix@scratchy.labs.cs.uu.nl", &nix_opts());
    assert_eq!(
        f.machine_list(),
        vec![Machine {
            uri: "ssh://nix@scratchy.labs.cs.uu.nl".into(),
            systems: set(&[ARCH]),
            ssh_key: None,
            max_jobs: 1,
            speed_factor: 1.0,
            supported_features: set(&[]),
            mandatory_features: set(&[]),
            ssh_public_host_key: None,
        }]
    );
}

#[test]
fn uri_with_port_gets_ssh_scheme() {
    let f = ok("nix@scratchy.labs.cs.uu.nl:2222", &nix_opts());
    assert_eq!(uris(&f), ["ssh://nix@scratchy.labs.cs.uu.nl:2222"]);
}

#[test]
fn dashes_mean_defaults() {
    let dashes = ok("nix@scratchy.labs.cs.uu.nl - - - - - - -", &nix_opts());
    let bare = ok("nix@scratchy.labs.cs.uu.nl", &nix_opts());
    assert_eq!(dashes.machine_list(), bare.machine_list());
}

#[test]
fn newline_separates_entries() {
    let f = ok(
        "nix@scratchy.labs.cs.uu.nl\nnix@itchy.labs.cs.uu.nl",
        &hydra_opts(),
    );
    assert_eq!(
        uris(&f),
        [
            "ssh://nix@scratchy.labs.cs.uu.nl",
            "ssh://nix@itchy.labs.cs.uu.nl"
        ]
    );
}

#[test]
fn semicolon_separates_entries() {
    let f = ok(
        "nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl",
        &hydra_opts(),
    );
    assert_eq!(
        uris(&f),
        [
            "ssh://nix@scratchy.labs.cs.uu.nl",
            "ssh://nix@itchy.labs.cs.uu.nl"
        ]
    );
    assert!(kinds(&f).contains(&&WarningKind::HydraOneMachinePerLine));
}

#[test]
fn comment_hides_semicolons_after_it() {
    let f = ok(
        "# a comment ; still the comment\n\
         nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl\n\
         # another ; comment\n\
         nix@scabby.labs.cs.uu.nl\n",
        &hydra_opts(),
    );
    assert_eq!(
        uris(&f),
        [
            "ssh://nix@scratchy.labs.cs.uu.nl",
            "ssh://nix@itchy.labs.cs.uu.nl",
            "ssh://nix@scabby.labs.cs.uu.nl"
        ]
    );
}

#[test]
fn odd_whitespace_and_empty_entries_are_skipped() {
    let f = ok(
        "        # comment ; comment\n   nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl   \n\n    \n\n ;;; \n\n ; ; \nnix@scabby.labs.cs.uu.nl\n\n",
        &hydra_opts(),
    );
    assert_eq!(f.machines.len(), 3);
}

fn complete_builder() -> Machine {
    Machine {
        uri: "ssh://nix@scratchy.labs.cs.uu.nl".into(),
        systems: set(&["i686-linux"]),
        ssh_key: Some("/home/nix/.ssh/id_scratchy_auto".into()),
        max_jobs: 8,
        speed_factor: 3.0,
        supported_features: set(&["kvm"]),
        mandatory_features: set(&["benchmark"]),
        ssh_public_host_key: Some("SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==".into()),
    }
}

#[test]
fn complete_builder_with_spaces() {
    let f = ok(
        "nix@scratchy.labs.cs.uu.nl     i686-linux      /home/nix/.ssh/id_scratchy_auto        8 3 kvm benchmark SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==",
        &hydra_opts(),
    );
    assert_eq!(f.machine_list(), vec![complete_builder()]);
}

#[test]
fn complete_builder_with_tabs() {
    let f = ok(
        "nix@scratchy.labs.cs.uu.nl\ti686-linux\t/home/nix/.ssh/id_scratchy_auto\t8\t3\tkvm\tbenchmark\tSSH+HOST+PUBLIC+KEY+BASE64+ENCODED==",
        &hydra_opts(),
    );
    assert_eq!(f.machine_list(), vec![complete_builder()]);
}

#[test]
fn lists_are_comma_separated() {
    let f = ok(
        "nix@scratchy.labs.cs.uu.nl Arch1,Arch2 - - - SupportedFeature1,SupportedFeature2 MandatoryFeature1,MandatoryFeature2",
        &hydra_opts(),
    );
    let m = &f.machines[0].machine;
    assert_eq!(m.systems, set(&["Arch1", "Arch2"]));
    assert_eq!(
        m.supported_features,
        set(&["SupportedFeature1", "SupportedFeature2"])
    );
    assert_eq!(
        m.mandatory_features,
        set(&["MandatoryFeature1", "MandatoryFeature2"])
    );
}

fn bad_column(e: &MachinesError) -> (usize, usize, Column, &str, &str) {
    match e {
        MachinesError::BadColumn {
            at,
            column,
            token,
            expected,
        } => (
            at.line,
            at.column,
            *column,
            token.as_str(),
            expected.as_str(),
        ),
        other => panic!("expected a column error, got {other:?}"),
    }
}

#[test]
fn max_jobs_word_is_an_error_naming_column_and_token() {
    let e = err("nix@scratchy.labs.cs.uu.nl - - eight");
    let (line, col, column, token, expected) = bad_column(&e);
    assert_eq!(
        (line, col, column, token),
        (1, 32, Column::MaxJobs, "eight")
    );
    assert!(expected.contains("unsigned integer"), "{expected}");
    let shown = e.to_string();
    assert!(shown.starts_with("machines:1:32: "), "{shown}");
    assert!(shown.contains("column #4 (max jobs)"), "{shown}");
}

#[test]
fn negative_max_jobs_is_an_error() {
    let e = err("nix@scratchy.labs.cs.uu.nl - - -1");
    assert_eq!(bad_column(&e).2, Column::MaxJobs);
    assert_eq!(bad_column(&e).3, "-1");
}

#[test]
fn speed_word_is_an_error() {
    let e = err("nix@scratchy.labs.cs.uu.nl - - 8 three");
    let (_, col, column, token, _) = bad_column(&e);
    assert_eq!((col, column, token), (34, Column::SpeedFactor, "three"));
}

#[test]
fn negative_speed_is_an_error() {
    let e = err("nix@scratchy.labs.cs.uu.nl - - 8 -3");
    let (_, _, column, token, expected) = bad_column(&e);
    assert_eq!((column, token), (Column::SpeedFactor, "-3"));
    assert!(expected.contains(">= 0"), "{expected}");
}

#[test]
fn bad_base64_host_key_points_at_the_bad_character() {
    let e = err("nix@scratchy.labs.cs.uu.nl - - 8 3 - - BAD_BASE64");
    let (_, col, column, token, expected) = bad_column(&e);
    assert_eq!(column, Column::SshPublicHostKey);
    assert_eq!(token, "BAD_BASE64");
    // `BAD_BASE64` starts at column 40; `_` is its fourth character.
    assert_eq!(col, 43);
    assert!(expected.contains("`_`"), "{expected}");
}

fn valid_file() -> (&'static str, &'static str) {
    (
        "/data/valid",
        "nix@scratchy.labs.cs.uu.nl  i686-linux  /home/nix/.ssh/id_scratchy_auto  8 1 kvm\n\
         nix@itchy.labs.cs.uu.nl     i686-linux  /home/nix/.ssh/id_scratchy_auto  8 2\n\
         nix@poochie.labs.cs.uu.nl   i686-linux  /home/nix/.ssh/id_scratchy_auto  1 2 kvm benchmark c3NoLXJzYSBBQUFB\n",
    )
}

#[test]
fn include_reads_the_file() {
    let f = with_files("@/data/valid", &[valid_file()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        uris(&f),
        [
            "ssh://nix@scratchy.labs.cs.uu.nl",
            "ssh://nix@itchy.labs.cs.uu.nl",
            "ssh://nix@poochie.labs.cs.uu.nl"
        ]
    );
    assert_eq!(f.machines[2].at.file, "/data/valid");
    assert_eq!(f.machines[2].at.line, 3);
    assert!(kinds(&f).contains(&&WarningKind::HydraNoIncludes));
}

#[test]
fn include_of_empty_file_gives_nothing() {
    let f = with_files("@/data/empty", &[("/data/empty", "")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.machines.is_empty());
}

#[test]
fn include_of_missing_file_is_skipped() {
    let f = with_files("@/not/a/file", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.machines.is_empty());
    assert!(kinds(&f).contains(&&WarningKind::MissingInclude {
        path: "/not/a/file".into()
    }));
}

#[test]
fn include_of_bad_file_fails_with_its_location() {
    let e = with_files(
        "host-a\n  @ /data/bad_format ; host-b",
        &[("/data/bad_format", "nix@scratchy.labs.cs.uu.nl - - eight\n")],
    )
    .err()
    .unwrap_or_else(|| panic!("expected an error"));
    let loc = e.location();
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.column),
        ("/data/bad_format", 1, 32)
    );
}

// --- Bugs and differences from the research notes -----------------------

#[test]
fn include_cycle_is_an_error() {
    let e = with_files("@/a", &[("/a", "host-a\n@/b"), ("/b", "host-b\n@/a")])
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    match e {
        MachinesError::IncludeCycle { at, token, chain } => {
            assert_eq!((at.file.as_str(), at.line, token.as_str()), ("/b", 2, "/a"));
            assert_eq!(chain, "/a -> /b");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn unreadable_include_is_an_error() {
    let e = with_files("@/unreadable", &[]).err();
    assert!(matches!(e, Some(MachinesError::Read { .. })), "{e:?}");
}

#[test]
fn includes_nest_and_keep_order() {
    let f = with_files("first\n@/a\nlast", &[("/a", "a1 ; @/b ; a2"), ("/b", "b1")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        uris(&f),
        [
            "ssh://first",
            "ssh://a1",
            "ssh://b1",
            "ssh://a2",
            "ssh://last"
        ]
    );
}

#[test]
fn nix_4703_error_names_file_line_column_and_token() {
    let e = err("# header\nhost-a x86_64-linux - 4 1\nhost-b x86_64-linux - 4x 1\n");
    assert_eq!(
        e.to_string(),
        "machines:3:23: bad machine specification: column #4 (max jobs) is `4x`, expected an unsigned integer below 2^32 (or `-` for 1)"
    );
}

#[test]
fn max_jobs_accepts_plus_and_rejects_overflow() {
    assert_eq!(
        ok("h - - +8", &hydra_opts()).machines[0].machine.max_jobs,
        8
    );
    assert_eq!(
        ok("h - - 4294967295", &hydra_opts()).machines[0]
            .machine
            .max_jobs,
        u32::MAX
    );
    assert_eq!(bad_column(&err("h - - 4294967296")).2, Column::MaxJobs);
    assert_eq!(bad_column(&err("h - - 0x10")).2, Column::MaxJobs);
}

#[test]
fn speed_zero_means_one_and_floats_are_kept() {
    for (token, want) in [
        ("0", 1.0),
        ("-0", 1.0),
        ("0.0", 1.0),
        ("2.5", 2.5),
        ("1e1", 10.0),
        (".5", 0.5),
    ] {
        let f = ok(&format!("h - - 1 {token}"), &hydra_opts());
        assert_eq!(f.machines[0].machine.speed_factor, want, "speed {token}");
    }
}

#[test]
fn non_finite_speed_is_refused() {
    for token in ["nan", "inf", "-inf", "1e39"] {
        let e = err(&format!("h - - 1 {token}"));
        assert_eq!(bad_column(&e).2, Column::SpeedFactor, "speed {token}");
    }
}

#[test]
fn hydra_passes_no_default_systems() {
    let f = ok("host", &hydra_opts());
    assert!(f.machines[0].machine.systems.is_empty());
    assert!(kinds(&f).contains(&&WarningKind::NoSystems));
}

#[test]
fn comma_alone_is_an_explicitly_empty_list() {
    let f = ok("host , - - - a,,b", &nix_opts());
    assert!(f.machines[0].machine.systems.is_empty());
    assert_eq!(f.machines[0].machine.supported_features, set(&["a", "b"]));
}

#[test]
fn uri_scheme_rules_follow_nix() {
    let cases = [
        ("host", "ssh://host"),
        ("user@host:22", "ssh://user@host:22"),
        ("ssh://host", "ssh://host"),
        ("ssh-ng://host", "ssh-ng://host"),
        ("auto", "auto"),
        ("daemon", "daemon"),
        ("local", "local"),
        ("local?root=/x", "local?root=/x"),
        ("daemon?x=1", "daemon?x=1"),
        ("autox", "ssh://autox"),
        ("?param=1", "?param=1"),
        ("/nix/store-b", "/nix/store-b"),
        ("relative/path", "relative/path"),
    ];
    for (written, want) in cases {
        assert_eq!(uris(&ok(written, &hydra_opts())), [want], "uri {written}");
    }
}

#[test]
fn dash_uri_is_an_error() {
    let e = err("- x86_64-linux");
    let (line, col, column, token, _) = bad_column(&e);
    assert_eq!((line, col, column, token), (1, 1, Column::Uri, "-"));
}

#[test]
fn crlf_lines_and_trailing_comments() {
    let f = ok(
        "host-a x86_64-linux\r\nhost-b x86_64-linux 4 # comment\r\n",
        &hydra_opts(),
    );
    assert_eq!(uris(&f), ["ssh://host-a", "ssh://host-b"]);
    assert_eq!(f.machines[1].machine.ssh_key.as_deref(), Some("4"));
}

#[test]
fn extra_columns_are_ignored_with_a_warning() {
    let f = ok("h x - 1 1 - - QUJD extra more", &hydra_opts());
    assert_eq!(f.machines.len(), 1);
    assert!(kinds(&f).contains(&&WarningKind::ExtraColumns { columns: 10 }));
}

#[test]
fn host_key_validation_stops_at_padding_like_nix() {
    let f = ok("h x - 1 1 - - QQ==tail!", &hydra_opts());
    assert_eq!(
        f.machines[0].machine.ssh_public_host_key.as_deref(),
        Some("QQ==tail!")
    );
}

#[test]
fn hydra_warnings_for_legacy_differences() {
    let f = ok("short x86_64-linux", &hydra_opts());
    assert_eq!(
        kinds(&f),
        [&WarningKind::HydraIgnoredShortEntry { columns: 2 }]
    );

    let f = ok("h x86_64-linux - 4", &hydra_opts());
    assert_eq!(kinds(&f), [&WarningKind::HydraSpeedReadAsZero]);
    let f = ok("h x86_64-linux - 4 -", &hydra_opts());
    assert_eq!(kinds(&f), [&WarningKind::HydraSpeedReadAsZero]);
    let f = ok("h x86_64-linux - 4 0", &hydra_opts());
    assert_eq!(kinds(&f), [&WarningKind::HydraSpeedReadAsZero]);
    assert_eq!(f.warnings[0].at.column, 20);

    let f = ok("h x86_64-linux - 4 1 kvm kvm,big", &hydra_opts());
    assert_eq!(
        kinds(&f),
        [&WarningKind::HydraMandatoryAddedToSupported {
            features: vec!["big".into()]
        }]
    );

    let f = ok("ssh-ng://h x86_64-linux - 4 1", &hydra_opts());
    assert_eq!(kinds(&f), [&WarningKind::HydraSchemeInHostColumn]);

    let f = ok("h x86_64-linux - 4 1 kvm kvm", &hydra_opts());
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
}

#[test]
fn duplicate_uris_are_reported() {
    let f = ok("a x\nssh://a y", &hydra_opts());
    let dup = f
        .warnings
        .iter()
        .find(|w| matches!(w.kind, WarningKind::DuplicateUri { .. }))
        .unwrap_or_else(|| panic!("no duplicate warning: {:?}", f.warnings));
    assert_eq!(dup.at.line, 2);
}

#[test]
fn builders_setting_string_parses_the_same_way() {
    let setting = "ssh://a x86_64-linux - 2 ; ssh://b aarch64-linux - 4 2 ; @/etc/nix/machines";
    let f = parse("<builders>", setting, &hydra_opts(), &NoFiles).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.format, Format::Lines);
    assert_eq!(uris(&f), ["ssh://a", "ssh://b"]);
    assert_eq!(f.machines[1].at.column, 28);
}

#[test]
fn strict_line_parser_does_not_detect_toml() {
    let f = parse_lines(
        "machines",
        "[machines.a]\nuri = \"x\"",
        &hydra_opts(),
        &NoFiles,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // What Nix itself would make of a TOML file: garbage machines.
    assert_eq!(uris(&f), ["ssh://[machines.a]", "ssh://uri"]);
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = err("höst-ä - - x");
    assert_eq!(e.location().column, 12);
}

// --- Budgets and linear cost -------------------------------------------------

/// Files in memory, generated at run time; counts how often it is read.
struct CountingFiles {
    files: BTreeMap<String, String>,
    reads: Cell<usize>,
}

impl nixwire_core::machines::FileSource for CountingFiles {
    fn read(&self, path: &Path) -> io::Result<Option<String>> {
        self.reads.set(self.reads.get() + 1);
        Ok(path.to_str().and_then(|p| self.files.get(p)).cloned())
    }
}

/// `/f01` to `/f19`, each including the next twice; `/f19` holds one
/// machine. Read in full that is 2^19 - 2 reads and 262,144 machines.
fn fan_out() -> CountingFiles {
    let mut files = BTreeMap::new();
    for i in 1..19 {
        let next = format!("/f{:02}", i + 1);
        files.insert(format!("/f{i:02}"), format!("@{next}\n@{next}\n"));
    }
    files.insert("/f19".to_owned(), "builder x86_64-linux\n".to_owned());
    CountingFiles {
        files,
        reads: Cell::new(0),
    }
}

#[test]
fn include_fan_out_stops_at_the_include_budget() {
    let files = fan_out();
    let e = parse("machines", "@/f01", &hydra_opts(), &files)
        .err()
        .unwrap_or_else(|| panic!("expected the include budget to run out"));
    match &e {
        MachinesError::TooManyIncludeReads {
            at,
            token,
            chain,
            limit,
        } => {
            assert_eq!(*limit, DEFAULT_MAX_INCLUDE_READS);
            assert!(
                chain.starts_with("machines -> /f01 -> /f02 -> /f03"),
                "{chain}"
            );
            // The chain ends with the file holding the `@` entry.
            assert!(chain.ends_with(&at.file), "{chain} vs {}", at.file);
            assert!(token.starts_with("/f"), "{token}");
        }
        other => panic!("expected TooManyIncludeReads, got {other:?}"),
    }
    assert!(e.is_budget_exceeded());
    let message = e.to_string();
    assert!(message.contains("machines -> /f01 -> /f02"), "{message}");
    assert!(message.contains("1024"), "{message}");
    // Exactly the budget was spent, not one read more.
    assert_eq!(files.reads.get(), DEFAULT_MAX_INCLUDE_READS);
}

#[test]
fn include_budget_is_configurable_and_exact() {
    let files = CountingFiles {
        files: BTreeMap::from([("/a".to_owned(), "host-a".to_owned())]),
        reads: Cell::new(0),
    };
    let options = ParseOptions {
        max_include_reads: 2,
        ..hydra_opts()
    };
    // Missing files count too: each `@` entry costs the host a look-up.
    let f = parse("machines", "@/a\n@/missing", &options, &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(uris(&f), ["ssh://host-a"]);
    let e = parse("machines", "@/a\n@/missing\n  @/a", &options, &files)
        .err()
        .unwrap_or_else(|| panic!("expected the include budget to run out"));
    match e {
        MachinesError::TooManyIncludeReads {
            at,
            token,
            chain,
            limit,
        } => {
            assert_eq!((at.line, at.column), (3, 3));
            assert_eq!(
                (token.as_str(), chain.as_str(), limit),
                ("/a", "machines", 2)
            );
        }
        other => panic!("expected TooManyIncludeReads, got {other:?}"),
    }
}

#[test]
fn include_fan_out_with_a_large_include_budget_stops_at_the_machine_budget() {
    let options = ParseOptions {
        max_include_reads: usize::MAX,
        max_machines: 1000,
        ..hydra_opts()
    };
    let e = parse("machines", "@/f01", &options, &fan_out())
        .err()
        .unwrap_or_else(|| panic!("expected the machine budget to run out"));
    match e {
        MachinesError::TooManyMachines {
            at,
            chain,
            count,
            limit,
        } => {
            assert_eq!((at.file.as_str(), at.line, at.column), ("/f19", 1, 1));
            let files: Vec<String> = (1..=19).map(|i| format!("/f{i:02}")).collect();
            assert_eq!(chain, format!("machines -> {}", files.join(" -> ")));
            assert_eq!((count, limit), (1001, 1000));
        }
        other => panic!("expected TooManyMachines, got {other:?}"),
    }
}

#[test]
fn machine_budget_is_exact_and_names_the_entry() {
    let options = ParseOptions {
        max_machines: 3,
        ..hydra_opts()
    };
    let parse_with = |text: &str| parse("machines", text, &options, &NoFiles);
    let f = parse_with("a;b\nc").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(uris(&f), ["ssh://a", "ssh://b", "ssh://c"]);
    let e = parse_with("a;b\nc ; d")
        .err()
        .unwrap_or_else(|| panic!("expected the machine budget to run out"));
    match &e {
        MachinesError::TooManyMachines {
            at,
            chain,
            count,
            limit,
        } => {
            assert_eq!((at.line, at.column), (2, 5));
            assert_eq!((chain.as_str(), *count, *limit), ("machines", 4, 3));
        }
        other => panic!("expected TooManyMachines, got {other:?}"),
    }
    assert!(e.to_string().contains("expected at most 3"), "{e}");
}

#[test]
fn default_budgets_are_documented_values() {
    let options = ParseOptions::default();
    assert_eq!(options.max_include_reads, 1024);
    assert_eq!(options.max_machines, 65_536);
    assert_eq!(
        ParseOptions::with_default_system(ARCH).max_machines,
        DEFAULT_MAX_MACHINES
    );
}

/// One line of 160,000 entries: computing each entry's column from the
/// start of the line made this quadratic (seconds); it is now linear.
#[test]
fn columns_on_a_line_of_160000_entries() {
    const ENTRIES: usize = 160_000;
    let options = ParseOptions {
        max_machines: 200_000,
        ..hydra_opts()
    };
    // `é` is two bytes and one column, so byte offsets and columns differ.
    let mut line = "é;".to_owned();
    line.push_str(&"h;".repeat(ENTRIES - 1));

    let f = parse("machines", &format!("# many\n{line}\n"), &options, &NoFiles)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.machines.len(), ENTRIES);
    let last = &f.machines[ENTRIES - 1].at;
    assert_eq!((last.line, last.column), (2, 2 * ENTRIES - 1));

    // A bad entry near the end: its 4th column starts 9 characters in.
    let text = format!("# many\n{line}host - - four ; h\n");
    let e = parse("machines", &text, &options, &NoFiles)
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    let (line_no, column, which, token, _) = bad_column(&e);
    assert_eq!(
        (line_no, column, which, token),
        (2, 2 * ENTRIES + 10, Column::MaxJobs, "four")
    );
}
