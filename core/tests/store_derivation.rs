//! Store derivations in ATerm text: real `.drv` files written by Nix 2.8
//! (`tests/data/drv/`, see its README) read and written back byte for byte,
//! the dynamic-derivation form, the errors (each saying where, what was
//! expected and what came), and quickcheck round trips over byte strings.

mod generators;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nixwire_core::store::aterm::{DYNAMIC_VERSION, MAX_DRV_LEN, MAX_ENTRIES, MAX_STRING_LEN};
use nixwire_core::store::{
    ContentAddressMethod, Derivation, DerivationError, DynamicInput, Hash, HashAlgo, MAX_NESTING,
    OutputAddressing, OutputName, StoreDir, StorePath,
};
use nixwire_core::wire::NixString;
use quickcheck::{Arbitrary, Gen, QuickCheck};

// ---- helpers ----

fn data_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/drv")
}

/// Every `.drv` of the test data, by base name.
fn real_drvs() -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(data_dir())
        .expect("the test data directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "drv"))
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 file name")
                .to_owned();
            (name, std::fs::read(&p).expect("a readable .drv"))
        })
        .collect()
}

/// The test data file of the derivation named `name`.
fn real(name: &str) -> (StorePath, Vec<u8>) {
    let file_name = format!("{name}.drv");
    let (base, text) = real_drvs()
        .into_iter()
        .find(|(base, _)| base.get(33..) == Some(&file_name))
        .expect("the named test derivation");
    (base.parse().expect("a store path"), text)
}

fn parse(text: &[u8]) -> Result<Derivation, DerivationError> {
    Derivation::parse(&StoreDir::default(), text)
}

fn parse_real(name: &str) -> Derivation {
    parse(&real(name).1).expect("a real derivation parses")
}

fn sp(s: &str) -> StorePath {
    s.parse().expect("a store path")
}

fn on(name: &str) -> OutputName {
    OutputName::new(name).expect("an output name")
}

fn ns(s: &str) -> NixString {
    NixString::from(s)
}

/// The error for `text`, whose message must name the offset, what was
/// expected and what came (the errors of the store's other parsers, which
/// these wrap, say what came in their own words).
fn error(text: &[u8]) -> DerivationError {
    let e = parse(text).expect_err("the text is refused");
    let msg = e.to_string();
    assert!(msg.contains("expected"), "no 'expected' in: {msg}");
    if !matches!(e, DerivationError::TooLarge { .. }) {
        assert!(msg.contains("at byte "), "no offset in: {msg}");
    }
    let wrapped = matches!(
        e,
        DerivationError::Path { .. }
            | DerivationError::OutputName { .. }
            | DerivationError::HashAlgo { .. }
            | DerivationError::Hash { .. }
    );
    assert!(wrapped || msg.contains("found"), "no 'found' in: {msg}");
    e
}

fn offset(e: &DerivationError) -> usize {
    let msg = e.to_string();
    let rest = msg.split("at byte ").nth(1).expect("an offset");
    rest[..rest.find(' ').expect("a space")]
        .parse()
        .expect("a number")
}

const A: &str = "/nix/store/bcafhi9f0ajp6nc79rx65dskz52hfi5h-a";
const DEP: &str = "/nix/store/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep.drv";

/// A small valid derivation with `args` and `env` spliced in as text.
fn with(outputs: &str, inputs: &str, platform: &str, args: &str, env: &str) -> Vec<u8> {
    format!("Derive([{outputs}],[{inputs}],[],\"{platform}\",\"/bin/sh\",[{args}],[{env}])")
        .into_bytes()
}

fn simple_outputs() -> String {
    format!("(\"out\",\"{A}\",\"\",\"\")")
}

// ---- real files ----

#[test]
fn every_real_drv_parses_and_renders_back_byte_for_byte() {
    let drvs = real_drvs();
    assert_eq!(drvs.len(), 9, "the test data: {:?}", drvs.keys());
    for (name, text) in drvs {
        let drv = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            drv.to_aterm(&StoreDir::default()),
            text,
            "{name} did not render back the same"
        );
    }
}

#[test]
fn the_escapes_of_a_real_drv_are_read() {
    let drv = parse_real("a");
    assert_eq!(
        drv.args,
        vec![
            ns("-c"),
            ns("echo \"quoted\" \\\\ back\nnew line\tand tab\r > $out"),
        ]
    );
    assert_eq!(drv.builder, "/bin/sh");
    assert_eq!(drv.platform, "x86_64-linux");
    assert_eq!(
        drv.outputs,
        BTreeMap::from([(on("out"), OutputAddressing::InputAddressed(sp(&A[11..])))])
    );
    assert_eq!(drv.env.get(&ns("name")), Some(&ns("a")));
    assert!(drv.input_drvs.is_empty() && drv.input_srcs.is_empty());
}

#[test]
fn bytes_that_are_not_utf8_are_kept() {
    let drv = parse_real("bytes");
    assert_eq!(drv.args[1].as_bytes(), b"echo \xff\xfe \x01 > $out");
    assert_eq!(
        drv.env.get(&ns("latin1")).map(NixString::as_bytes),
        Some(&b"caf\xe9"[..])
    );
}

#[test]
fn input_derivations_and_sources_are_read() {
    let drv = parse_real("with-input");
    assert_eq!(
        drv.input_drvs,
        BTreeMap::from([(
            sp("yldq6b5c7s2qmhl1hyhxpgzkz2ig9218-a.drv"),
            BTreeSet::from([on("out")])
        )])
    );
    assert_eq!(
        drv.input_srcs,
        BTreeSet::from([sp("6ymggbfr3w6d5ai0cv1psdp8hg9apsfd-a.nix")])
    );

    let uses = parse_real("uses-multi");
    assert_eq!(
        uses.input_drvs.values().next(),
        Some(&BTreeSet::from([on("bin"), on("dev")]))
    );
}

#[test]
fn the_output_forms_are_told_apart() {
    let fixed = parse_real("fixed");
    let out = &fixed.outputs[&on("out")];
    let OutputAddressing::Fixed { path, ca } = out else {
        panic!("not fixed: {out:?}");
    };
    assert_eq!(path.base_name(), "90m91g6vramlksp44ak5lr68v56z6w1x-fixed");
    assert_eq!(ca.method, ContentAddressMethod::Nar);
    assert_eq!(
        ca.hash.to_sri(),
        "sha256-pQpattmS9VmO3ZIQUFn66az8GSmB4IvYhTTCFn6SUmo="
    );
    assert_eq!(out.hash_algo(), "r:sha256");

    let floating = OutputAddressing::Floating {
        method: ContentAddressMethod::Nar,
        algo: HashAlgo::Sha256,
    };
    assert_eq!(parse_real("floating").outputs[&on("out")], floating);
    assert_eq!(
        parse_real("deferred").outputs[&on("out")],
        OutputAddressing::Deferred
    );
    assert_eq!(
        parse_real("impure").outputs[&on("out")],
        OutputAddressing::Impure {
            method: ContentAddressMethod::Nar,
            algo: HashAlgo::Sha256,
        }
    );

    let multi = parse_real("multi");
    let names: Vec<&str> = multi.outputs.keys().map(OutputName::as_str).collect();
    assert_eq!(names, ["bin", "dev", "out"]);
    assert_eq!(multi.input_drvs.len(), 2);
}

#[test]
fn to_basic_joins_the_resolved_inputs_to_the_sources() {
    let drv = parse_real("with-input");
    let a_out = sp(&A[11..]);
    let basic = drv.to_basic([a_out.clone()]);
    assert_eq!(
        basic.input_srcs,
        vec![sp("6ymggbfr3w6d5ai0cv1psdp8hg9apsfd-a.nix"), a_out]
    );
    assert_eq!(basic.args, drv.args);
    assert_eq!(basic.platform, drv.platform);
    assert_eq!(basic.builder, drv.builder);
    let env: Vec<_> = drv.env.into_iter().collect();
    assert_eq!(basic.env, env);

    let fixed = parse_real("fixed").to_basic([]);
    let out = &fixed.outputs[0];
    assert_eq!(out.name, on("out"));
    assert_eq!(
        out.path.as_ref().map(StorePath::base_name),
        Some("90m91g6vramlksp44ak5lr68v56z6w1x-fixed")
    );
    assert_eq!(out.hash_algo, "r:sha256");
    assert_eq!(
        out.hash,
        "a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a"
    );

    let multi = parse_real("multi").to_basic([]);
    let names: Vec<&str> = multi.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["bin", "dev", "out"]);
    assert!(
        multi
            .outputs
            .iter()
            .all(|o| o.hash_algo.is_empty() && o.hash.is_empty())
    );

    let floating = parse_real("floating").to_basic([]);
    assert_eq!(floating.outputs[0].path, None);
    assert_eq!(floating.outputs[0].hash_algo, "r:sha256");
    assert_eq!(floating.outputs[0].hash, "");
    let impure = parse_real("impure").to_basic([]);
    assert_eq!(impure.outputs[0].hash, "impure");
}

#[test]
fn another_store_directory_reads_and_writes_its_own_paths() {
    let (_, text) = real("with-input");
    let text = String::from_utf8(text).expect("UTF-8");
    let moved = text.replace("/nix/store/", "/gnu/store/");
    let gnu = StoreDir::new("/gnu/store").expect("a store dir");
    let drv = Derivation::parse(&gnu, moved.as_bytes()).expect("parses in /gnu/store");
    assert_eq!(drv.to_aterm(&gnu), moved.as_bytes());
    // The same text is not in /nix/store.
    assert!(matches!(
        error(moved.as_bytes()),
        DerivationError::Path { .. }
    ));
}

// ---- dynamic derivations ----

fn dyn_text(entry: &str) -> Vec<u8> {
    format!(
        "DrvWithVersion(\"{DYNAMIC_VERSION}\",[(\"out\",\"\",\"\",\"\")],[(\"{DEP}\",{entry})],[],\"x86_64-linux\",\"/bin/sh\",[],[])"
    )
    .into_bytes()
}

#[test]
fn the_dynamic_form_is_read_and_written_back() {
    let text = dyn_text("([\"dev\",\"out\"],[(\"bin\",[\"a\"]),(\"out\",([],[(\"x\",[\"y\"])]))])");
    let drv = parse(&text).expect("the dynamic form parses");
    let dep = sp(&DEP[11..]);
    assert_eq!(
        drv.input_drvs,
        BTreeMap::from([(dep.clone(), BTreeSet::from([on("dev"), on("out")]))])
    );
    let leaf = |name: &str| DynamicInput {
        outputs: BTreeSet::from([on(name)]),
        dynamic: BTreeMap::new(),
    };
    assert_eq!(
        drv.dynamic_input_drvs,
        BTreeMap::from([(
            dep,
            BTreeMap::from([
                (on("bin"), leaf("a")),
                (
                    on("out"),
                    DynamicInput {
                        outputs: BTreeSet::new(),
                        dynamic: BTreeMap::from([(on("x"), leaf("y"))]),
                    }
                ),
            ])
        )])
    );
    assert_eq!(drv.to_aterm(&StoreDir::default()), text);

    // Only outputs of outputs: no plain entry.
    let text = dyn_text("([],[(\"out\",[\"out\"])])");
    let drv = parse(&text).expect("parses");
    assert!(drv.input_drvs.is_empty());
    assert_eq!(drv.to_aterm(&StoreDir::default()), text);
}

#[test]
fn without_dynamic_inputs_nix_writes_derive() {
    let mut drv = parse_real("with-input");
    let dep = sp("yldq6b5c7s2qmhl1hyhxpgzkz2ig9218-a.drv");
    // An empty map of outputs of outputs counts as none.
    drv.dynamic_input_drvs.insert(dep.clone(), BTreeMap::new());
    assert_eq!(drv.to_aterm(&StoreDir::default()), real("with-input").1);

    drv.dynamic_input_drvs.insert(
        dep,
        BTreeMap::from([(
            on("out"),
            DynamicInput {
                outputs: BTreeSet::from([on("lib")]),
                dynamic: BTreeMap::new(),
            },
        )]),
    );
    let text = drv.to_aterm(&StoreDir::default());
    assert!(text.starts_with(b"DrvWithVersion(\"xp-dyn-drv\",["));
    let needle = b"-a.drv\",([\"out\"],[(\"out\",[\"lib\"])]))";
    assert!(text.windows(needle.len()).any(|w| w == needle));
    assert_eq!(parse(&text).expect("parses"), drv);
}

fn nested(depth: usize) -> String {
    // `depth` entries: the input's own, then depth - 1 outputs of outputs.
    let mut entry = "[\"out\"]".to_owned();
    for _ in 1..depth {
        entry = format!("([],[(\"out\",{entry})])");
    }
    entry
}

#[test]
fn nesting_is_bounded() {
    let ok = dyn_text(&nested(MAX_NESTING));
    let drv = parse(&ok).expect("nesting up to the limit parses");
    assert_eq!(drv.to_aterm(&StoreDir::default()), ok);

    let deep = dyn_text(&nested(MAX_NESTING + 1));
    let e = error(&deep);
    assert!(matches!(e, DerivationError::TooDeep { .. }), "{e}");
    // Far deeper still fails without exhausting the stack.
    let e = error(&dyn_text(&nested(100_000)));
    assert!(matches!(e, DerivationError::TooDeep { .. }), "{e}");

    // The traditional form has no nesting: a nested list is just wrong.
    let e = error(b"Derive([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    assert_eq!(offset(&e), 8);
    assert!(e.to_string().contains("expected '('"), "{e}");
}

// ---- errors ----

#[test]
fn a_wrong_head_is_refused() {
    let e = error(b"Derivation([],[],[],\"\",\"\",[],[])");
    assert_eq!(offset(&e), 0);
    assert!(
        e.to_string().contains("'Derive(' or 'DrvWithVersion('"),
        "{e}"
    );
    assert!(e.to_string().contains("found 'Derivation([],['"), "{e}");
    let e = error(b"");
    assert!(e.to_string().contains("the end of the text"), "{e}");
    let e = error(b"DrvWithVersion(\"v2\",[],[],[],\"\",\"\",[],[])");
    assert!(
        matches!(e, DerivationError::UnknownVersion { offset: 15, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("found 'v2'"), "{e}");
    // The versioned form without a dynamic input is not what Nix writes.
    let e = error(b"DrvWithVersion(\"xp-dyn-drv\",[],[],[],\"\",\"\",[],[])");
    assert!(e.to_string().contains("expected 'Derive('"), "{e}");
}

#[test]
fn every_truncation_is_refused_with_the_end_of_the_text() {
    for name in ["a", "multi", "fixed"] {
        let (_, text) = real(name);
        for len in 0..text.len() {
            let e = error(&text[..len]);
            assert!(
                e.to_string().contains("found the end of the text")
                    || e.to_string().contains("found '"),
                "{name}[..{len}]: {e}"
            );
        }
    }
    let (_, text) = real("a");
    let e = error(&text[..40]);
    assert_eq!(offset(&e), 40);
    assert!(
        e.to_string()
            .contains("closing the string opened at byte 15"),
        "{e}"
    );
}

#[test]
fn escapes_nix_does_not_write_are_refused() {
    let text = with(&simple_outputs(), "", "x", "\"a\\qb\"", "");
    let e = error(&text);
    let at = text.iter().position(|&b| b == b'\\').expect("a backslash");
    assert_eq!(
        e,
        DerivationError::BadEscape {
            offset: at,
            found: b'q'
        }
    );
    assert!(e.to_string().contains("found 'q'"), "{e}");

    // A raw newline Nix would have written as \n.
    let text = with(&simple_outputs(), "", "x", "\"a\nb\"", "");
    let e = error(&text);
    assert!(e.to_string().contains("expected '\\n'"), "{e}");
    assert!(e.to_string().contains("found 0x0a"), "{e}");

    // A backslash where Nix writes no escapes (the platform).
    let e = error(&with(&simple_outputs(), "", "x\\n", "", ""));
    assert!(e.to_string().contains("the platform with no '\\'"), "{e}");

    // A backslash at the very end.
    let e = error(b"Derive([],[],[],\"x\",\"\\");
    assert!(e.to_string().contains("an escaped character"), "{e}");
}

#[test]
fn bad_store_paths_are_refused() {
    let text = with(&simple_outputs(), "", "x", "", "");
    let bad = String::from_utf8(text)
        .expect("UTF-8")
        .replace("],[],\"x\"", "],[\"/nix/store/abc\"],\"x\"");
    let e = error(bad.as_bytes());
    assert!(matches!(e, DerivationError::Path { .. }), "{e}");
    assert!(e.to_string().contains("/nix/store/abc"), "{e}");

    // An output path outside the store.
    let e = error(&with("(\"out\",\"/tmp/x\",\"\",\"\")", "", "x", "", ""));
    assert!(matches!(e, DerivationError::Path { offset: 15, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("expected '/nix/store/<hash>-<name>'"),
        "{e}"
    );

    // A huge one is cut short in the message.
    let huge = format!("(\"out\",\"/nix/store/{}\",\"\",\"\")", "a".repeat(100_000));
    let e = error(&with(&huge, "", "x", "", ""));
    assert!(e.to_string().len() < 400, "{e}");
}

#[test]
fn trailing_bytes_are_refused() {
    let (_, mut text) = real("a");
    let len = text.len();
    text.extend_from_slice(b"\n");
    let e = error(&text);
    assert_eq!(
        e,
        DerivationError::TrailingBytes {
            offset: len,
            count: 1,
            first: b'\n'
        }
    );
    assert!(
        e.to_string()
            .contains("found 1 more bytes starting with 0x0a"),
        "{e}"
    );
}

#[test]
fn limits_are_kept() {
    // A string over the limit, in an argument and in the platform.
    let long = "a".repeat(MAX_STRING_LEN + 1);
    let e = error(&with(
        &simple_outputs(),
        "",
        "x",
        &format!("\"{long}\""),
        "",
    ));
    assert!(
        matches!(
            e,
            DerivationError::StringTooLong {
                max: MAX_STRING_LEN,
                ..
            }
        ),
        "{e}"
    );
    let e = error(&with(&simple_outputs(), "", &long, "", ""));
    assert!(matches!(e, DerivationError::StringTooLong { .. }), "{e}");
    // Exactly at the limit is fine.
    let at_limit = "a".repeat(MAX_STRING_LEN);
    let text = with(&simple_outputs(), "", "x", &format!("\"{at_limit}\""), "");
    assert_eq!(
        parse(&text).expect("parses").to_aterm(&StoreDir::default()),
        text
    );

    // The whole text over the limit.
    let e = error(&vec![b' '; MAX_DRV_LEN + 1]);
    assert_eq!(
        e,
        DerivationError::TooLarge {
            len: MAX_DRV_LEN + 1,
            max: MAX_DRV_LEN
        }
    );

    // Too many entries.
    let args = vec!["\"\""; MAX_ENTRIES].join(",");
    let e = error(&with(&simple_outputs(), "", "x", &args, ""));
    assert!(matches!(e, DerivationError::TooManyEntries { .. }), "{e}");
    let args = vec!["\"\""; MAX_ENTRIES - 1].join(",");
    parse(&with(&simple_outputs(), "", "x", &args, "")).expect("just under the limit");
}

#[test]
fn what_nix_sorts_must_be_sorted() {
    let e = error(&with(
        &simple_outputs(),
        "",
        "x",
        "",
        "(\"b\",\"1\"),(\"a\",\"2\")",
    ));
    assert!(
        matches!(
            e,
            DerivationError::Unsorted {
                what: "environment variables",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("found 'a' after 'b'"), "{e}");
    let e = error(&with(
        &simple_outputs(),
        "",
        "x",
        "",
        "(\"a\",\"1\"),(\"a\",\"2\")",
    ));
    assert!(e.to_string().contains("found 'a' after 'a'"), "{e}");

    let two = format!("(\"out\",\"{A}\",\"\",\"\"),(\"dev\",\"{A}\",\"\",\"\")");
    let e = error(&with(&two, "", "x", "", ""));
    assert!(
        matches!(
            e,
            DerivationError::Unsorted {
                what: "outputs",
                ..
            }
        ),
        "{e}"
    );

    let input = format!("(\"{DEP}\",[\"out\",\"dev\"])");
    let e = error(&with(&simple_outputs(), &input, "x", "", ""));
    assert!(
        matches!(
            e,
            DerivationError::Unsorted {
                what: "output names",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn output_forms_nix_does_not_write_are_refused() {
    let hex = "a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a";
    let cases = [
        // A floating output with a path.
        (
            format!("(\"out\",\"{A}\",\"r:sha256\",\"\")"),
            "no path for output 'out'",
        ),
        // An impure output with a path.
        (
            format!("(\"out\",\"{A}\",\"r:sha256\",\"impure\")"),
            "no path for output 'out'",
        ),
        // A hash with no algorithm.
        (
            format!("(\"out\",\"{A}\",\"\",\"{hex}\")"),
            "no hash for output 'out'",
        ),
        // A fixed output without its path.
        (
            format!("(\"out\",\"\",\"r:sha256\",\"{hex}\")"),
            "not in the store",
        ),
        // The hash in upper case, or in nix32.
        (
            format!("(\"out\",\"{A}\",\"r:sha256\",\"{}\")", hex.to_uppercase()),
            "lowercase base16",
        ),
        (
            format!(
                "(\"out\",\"{A}\",\"r:sha256\",\"1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\")"
            ),
            "lowercase base16",
        ),
        // An unknown algorithm.
        (format!("(\"out\",\"{A}\",\"r:sha3\",\"{hex}\")"), "sha3"),
        // A bad output name.
        (format!("(\"o/t\",\"{A}\",\"\",\"\")"), "output name"),
    ];
    for (outputs, needle) in cases {
        let e = error(&with(&outputs, "", "x", "", ""));
        assert!(e.to_string().contains(needle), "{outputs}: {e}");
    }
    // A digit that is not hex, named with its offset.
    let bad_hex = hex.replace('a', "g");
    let outputs = format!("(\"out\",\"{A}\",\"r:sha256\",\"{bad_hex}\")");
    let text = with(&outputs, "", "x", "", "");
    let e = error(&text);
    let at = text.iter().position(|&b| b == b'g').expect("a 'g'");
    assert_eq!(offset(&e), at, "{e}");
    assert!(e.to_string().contains("found 'g'"), "{e}");
}

#[test]
fn lists_are_written_as_nix_writes_them() {
    // A comma before the first entry, a missing comma, no outputs named.
    let e = error(&with(&simple_outputs(), "", "x", ",\"a\"", ""));
    assert!(e.to_string().contains("expected '\"'"), "{e}");
    let e = error(&with(&simple_outputs(), "", "x", "\"a\"\"b\"", ""));
    assert!(e.to_string().contains("expected ',' or ']'"), "{e}");
    let e = error(&with(
        &simple_outputs(),
        &format!("(\"{DEP}\",[])"),
        "x",
        "",
        "",
    ));
    assert!(e.to_string().contains("at least one output name"), "{e}");
    // The nested form needs the versioned head.
    let e = error(&with(
        &simple_outputs(),
        &format!("(\"{DEP}\",([\"out\"],[(\"out\",[\"out\"])]))"),
        "x",
        "",
        "",
    ));
    assert!(e.to_string().contains("DrvWithVersion"), "{e}");
    // A nested entry without outputs of outputs is written as a list.
    let e = error(&dyn_text("([\"out\"],[])"));
    assert!(
        e.to_string().contains("at least one output of an output"),
        "{e}"
    );
}

// ---- quickcheck ----

/// A derivation with arbitrary byte strings where Nix allows any bytes.
#[derive(Debug, Clone)]
struct Arb(Derivation);

fn method(g: &mut Gen) -> ContentAddressMethod {
    *g.choose(&ContentAddressMethod::ALL)
        .unwrap_or(&ContentAddressMethod::Nar)
}

fn algo(g: &mut Gen) -> HashAlgo {
    *g.choose(&HashAlgo::ALL).unwrap_or(&HashAlgo::Sha256)
}

fn output(g: &mut Gen) -> OutputAddressing {
    match u8::arbitrary(g) % 5 {
        0 => OutputAddressing::InputAddressed(generators::path(g)),
        1 => {
            let algo = algo(g);
            let digest: Vec<u8> = (0..algo.size()).map(|_| u8::arbitrary(g)).collect();
            OutputAddressing::Fixed {
                path: generators::path(g),
                ca: nixwire_core::store::ContentAddress {
                    method: method(g),
                    hash: Hash::new(algo, &digest).expect("a digest of the size"),
                },
            }
        }
        2 => OutputAddressing::Floating {
            method: method(g),
            algo: algo(g),
        },
        3 => OutputAddressing::Deferred,
        _ => OutputAddressing::Impure {
            method: method(g),
            algo: algo(g),
        },
    }
}

fn names(g: &mut Gen) -> BTreeSet<OutputName> {
    (0..u8::arbitrary(g) % 3)
        .map(|_| generators::output_name(g))
        .collect()
}

fn dynamic(g: &mut Gen, depth: usize) -> BTreeMap<OutputName, DynamicInput> {
    if depth == 0 {
        return BTreeMap::new();
    }
    (0..u8::arbitrary(g) % 3)
        .map(|_| {
            (
                generators::output_name(g),
                DynamicInput {
                    outputs: names(g),
                    dynamic: dynamic(g, depth - 1),
                },
            )
        })
        .collect()
}

impl Arbitrary for Arb {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut input_drvs = BTreeMap::new();
        let mut dynamic_input_drvs = BTreeMap::new();
        for _ in 0..u8::arbitrary(g) % 3 {
            let path = generators::drv(g);
            let outputs = names(g);
            // Only the dynamic form sometimes; never an entry with nothing.
            let children = if bool::arbitrary(g) {
                dynamic(g, 3)
            } else {
                BTreeMap::new()
            };
            if outputs.is_empty() && children.is_empty() {
                input_drvs.insert(path, BTreeSet::from([OutputName::out()]));
                continue;
            }
            if !outputs.is_empty() {
                input_drvs.insert(path.clone(), outputs);
            }
            if !children.is_empty() {
                dynamic_input_drvs.insert(path, children);
            }
        }
        // The platform is written unescaped, so it has no '"' or '\'.
        let platform: Vec<u8> = generators::s(g)
            .as_bytes()
            .iter()
            .copied()
            .filter(|&b| b != b'"' && b != b'\\')
            .collect();
        Self(Derivation {
            outputs: (0..u8::arbitrary(g) % 4)
                .map(|_| (generators::output_name(g), output(g)))
                .collect(),
            input_drvs,
            dynamic_input_drvs,
            input_srcs: generators::paths(g).into_iter().collect(),
            platform: NixString::from(platform),
            builder: generators::s(g),
            args: (0..u8::arbitrary(g) % 5)
                .map(|_| generators::s(g))
                .collect(),
            env: (0..u8::arbitrary(g) % 5)
                .map(|_| (generators::s(g), generators::s(g)))
                .collect(),
        })
    }
}

fn round_trips(drv: Arb) -> bool {
    let dir = StoreDir::default();
    let text = drv.0.to_aterm(&dir);
    match Derivation::parse(&dir, &text) {
        Ok(back) if back == drv.0 => back.to_aterm(&dir) == text,
        other => {
            eprintln!("{:?}\n{}\n{other:?}", drv.0, String::from_utf8_lossy(&text));
            false
        }
    }
}

#[test]
fn to_aterm_then_parse_gives_the_same_derivation() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(round_trips as fn(Arb) -> bool);
}

/// Every byte value, escaped or not, survives in args and env.
#[test]
fn every_byte_survives() {
    let all: Vec<u8> = (0..=255).collect();
    let drv = Derivation {
        args: vec![NixString::from(all.clone())],
        env: BTreeMap::from([(NixString::from(all.clone()), NixString::from(all))]),
        ..Derivation::default()
    };
    let text = drv.to_aterm(&StoreDir::default());
    assert_eq!(parse(&text).expect("parses"), drv);
}

/// A real derivation with a few bytes changed: refused, or, when accepted,
/// written back as it came (whatever is read is what Nix writes).
#[derive(Debug, Clone)]
struct Mutated(Vec<u8>);

impl Arbitrary for Mutated {
    fn arbitrary(g: &mut Gen) -> Self {
        const BYTES: &[u8] = b"\"\\,()[]nrt\n/.-_0aD";
        let drvs = real_drvs();
        let texts: Vec<&Vec<u8>> = drvs.values().collect();
        let mut text = (*g.choose(&texts).expect("test data")).clone();
        for _ in 0..1 + u8::arbitrary(g) % 3 {
            let i = usize::arbitrary(g) % text.len().max(1);
            match u8::arbitrary(g) % 3 {
                0 if i < text.len() => {
                    text.remove(i);
                }
                1 => text.insert(i.min(text.len()), *g.choose(BYTES).unwrap_or(&b'x')),
                _ if i < text.len() => text[i] = *g.choose(BYTES).unwrap_or(&b'x'),
                _ => {}
            }
        }
        Self(text)
    }
}

fn mutated_is_refused_or_canonical(m: Mutated) -> bool {
    let dir = StoreDir::default();
    match Derivation::parse(&dir, &m.0) {
        Ok(drv) => drv.to_aterm(&dir) == m.0,
        Err(_) => true,
    }
}

#[test]
fn whatever_is_accepted_is_written_back_as_it_came() {
    QuickCheck::new()
        .tests(3000)
        .quickcheck(mutated_is_refused_or_canonical as fn(Mutated) -> bool);
}
