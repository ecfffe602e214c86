//! Store paths, output names and the store directory: each of Nix's rules
//! (`src/libstore/path.cc`, the cases of `src/libstore-tests/path.cc`), with
//! the error each breach gives, and round trips.

use nixwire_core::store::path::{MAX_NAME_LEN, check_name};
use nixwire_core::store::{
    NameError, OutputName, StoreDir, StoreDirError, StorePath, StorePathError,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const HASH: &str = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q";

fn path(name: &str) -> Result<StorePath, StorePathError> {
    StorePath::from_base_name(format!("{HASH}-{name}").as_bytes())
}

fn name_error(name: &str) -> NameError {
    match path(name) {
        Err(StorePathError::InvalidName { source, base_name }) => {
            assert_eq!(base_name, format!("{HASH}-{name}"));
            source
        }
        other => panic!("{name:?}: expected an invalid name, got {other:?}"),
    }
}

#[test]
fn names_nix_accepts() {
    // Nix's TEST_DO_PARSE cases, and the edges of the leading-dot rule.
    for name in [
        "02345",
        "foo",
        "FOO",
        "foo+bar",
        "foo-dev",
        "foo_bar",
        "foo.txt",
        "foo?why",
        "foo=foo",
        ".gitignore",
        "...a",
        "...1",
        "...-",
        "...",
        ".a-b",
        "..a",
        "-",
        "a",
        "hello-2.12.1",
    ] {
        let p = path(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert_eq!(p.name(), name);
        assert_eq!(p.hash_part(), HASH);
        assert_eq!(p.base_name(), format!("{HASH}-{name}"));
        assert_eq!(p.to_string(), p.base_name());
        check_name(name.as_bytes()).unwrap();
    }
}

#[test]
fn empty_name() {
    assert_eq!(name_error(""), NameError::Empty);
}

#[test]
fn name_length_limit_is_211_bytes() {
    let longest = "a".repeat(MAX_NAME_LEN);
    assert_eq!(MAX_NAME_LEN, 211);
    assert_eq!(path(&longest).unwrap().name().len(), 211);
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    assert_eq!(
        name_error(&too_long),
        NameError::TooLong {
            name: too_long.clone(),
            len: 212
        }
    );
}

#[test]
fn dot_and_dot_dot_are_not_names() {
    for name in [".", ".."] {
        assert_eq!(
            name_error(name),
            NameError::DotOrDotDot {
                name: name.to_owned()
            }
        );
    }
}

#[test]
fn first_component_must_not_be_dot_or_dot_dot() {
    for (name, component) in [
        (".-1", "."),
        (".-a", "."),
        (".-", "."),
        ("..-1", ".."),
        ("..-a", ".."),
        ("..-", ".."),
    ] {
        assert_eq!(
            name_error(name),
            NameError::DotComponent {
                name: name.to_owned(),
                component
            },
            "{name}"
        );
    }
}

#[test]
fn characters_outside_the_name_alphabet() {
    // Nix's TEST_DONT_PARSE garbage cases, plus bytes that are not ASCII.
    for (name, position, found) in [
        ("&*()", 0, b'&'),
        ("**", 0, b'*'),
        ("*,foo", 0, b'*'),
        ("foo,*", 3, b','),
        ("foo!o", 3, b'!'),
        ("a b", 1, b' '),
        ("a/b", 1, b'/'),
        ("caf\u{e9}", 3, 0xc3),
    ] {
        assert_eq!(
            name_error(name),
            NameError::InvalidChar {
                name: name.to_owned(),
                position,
                found
            },
            "{name}"
        );
    }
    let mut bytes = format!("{HASH}-a").into_bytes();
    bytes.push(0);
    assert!(matches!(
        StorePath::from_base_name(&bytes),
        Err(StorePathError::InvalidName {
            source: NameError::InvalidChar {
                position: 1,
                found: 0,
                ..
            },
            ..
        })
    ));
}

#[test]
fn the_leading_dot_rules_come_before_the_character_check() {
    // Nix checks "." and ".-" before the characters: ".-!" reports the dot.
    assert!(matches!(
        name_error(".-!"),
        NameError::DotComponent { component: ".", .. }
    ));
    // And the length before everything else.
    let long = format!("!{}", "a".repeat(MAX_NAME_LEN));
    assert!(matches!(
        name_error(&long),
        NameError::TooLong { len: 212, .. }
    ));
}

#[test]
fn too_short() {
    for base in ["", "abc", HASH] {
        assert_eq!(
            StorePath::from_base_name(base.as_bytes()),
            Err(StorePathError::TooShort {
                base_name: base.to_owned(),
                len: base.len()
            })
        );
    }
    // A hash and a dash is long enough to be looked at, and has an empty name.
    assert!(matches!(
        StorePath::from_base_name(format!("{HASH}-").as_bytes()),
        Err(StorePathError::InvalidName {
            source: NameError::Empty,
            ..
        })
    ));
}

#[test]
fn the_hash_part_is_followed_by_a_dash() {
    let base = format!("{HASH}_foo");
    assert_eq!(
        StorePath::from_base_name(base.as_bytes()),
        Err(StorePathError::MissingDash {
            base_name: base.clone(),
            found: b'_'
        })
    );
    // A 31-character hash: the dash is at 31, and byte 32 is the name's.
    let base = format!("{}-foo", &HASH[..31]);
    assert!(matches!(
        StorePath::from_base_name(base.as_bytes()),
        Err(StorePathError::MissingDash { found: b'f', .. })
    ));
}

#[test]
fn the_hash_part_is_nix32() {
    // e, o, u and t are not Nix32 digits, nor is upper case or punctuation.
    for (bad, found) in [
        ('e', b'e'),
        ('o', b'o'),
        ('u', b'u'),
        ('t', b't'),
        ('A', b'A'),
        ('-', b'-'),
        ('.', b'.'),
    ] {
        let mut hash = HASH.to_owned();
        hash.replace_range(5..6, &bad.to_string());
        let base = format!("{hash}-foo");
        assert_eq!(
            StorePath::from_base_name(base.as_bytes()),
            Err(StorePathError::InvalidHashChar {
                base_name: base.clone(),
                position: 5,
                found
            }),
            "{base}"
        );
    }
    for c in "0123456789abcdfghijklmnpqrsvwxyz".chars() {
        let base = format!("{}-foo", c.to_string().repeat(32));
        StorePath::from_base_name(base.as_bytes()).unwrap();
    }
}

#[test]
fn errors_say_what_was_expected() {
    let e = path("foo!o").unwrap_err().to_string();
    assert!(
        e.contains("'!'") && e.contains("expected only letters, digits"),
        "{e}"
    );
    let e = StorePath::from_base_name(b"tooshort")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a 32-character hash, '-' and a name"),
        "{e}"
    );
    let e = StorePath::from_base_name(format!("{}e-x", &HASH[..31]).as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'e'") && e.contains("0123456789abcdfghijklmnpqrsvwxyz"),
        "{e}"
    );
}

#[test]
fn accessors_and_derivations() {
    let p: StorePath = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.drv"
        .parse()
        .unwrap();
    assert_eq!(p.hash_part(), "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz");
    assert_eq!(p.name(), "hello-2.12.drv");
    assert!(p.is_derivation());
    assert!(!path("hello").unwrap().is_derivation());
    assert!(!path("hello.drvx").unwrap().is_derivation());
    assert_eq!(
        format!("{p:?}"),
        "StorePath(\"7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.drv\")"
    );
}

#[test]
fn from_digest_and_back() {
    // Nix's dummy path: a hash part of all 'f'.
    let p = StorePath::from_base_name(b"ffffffffffffffffffffffffffffffff-x").unwrap();
    let digest = p.digest();
    assert_eq!(StorePath::from_digest(&digest, "x").unwrap(), p);
    // The all-zero digest is the all-'0' hash part; 0x01 in byte 0 ends in '1'.
    let zero = StorePath::from_digest(&[0; 20], "a").unwrap();
    assert_eq!(zero.hash_part(), "0".repeat(32));
    let mut one = [0; 20];
    one[0] = 1;
    assert_eq!(
        StorePath::from_digest(&one, "a").unwrap().hash_part(),
        format!("{}1", "0".repeat(31))
    );
    assert!(StorePath::from_digest(&one, "a b").is_err());
}

#[test]
fn ordering_is_by_base_name() {
    let mut paths = [path("b").unwrap(), path("a").unwrap(), path("B").unwrap()];
    paths.sort();
    let names: Vec<_> = paths.iter().map(StorePath::name).collect();
    assert_eq!(names, ["B", "a", "b"]);
}

#[test]
fn output_names_use_the_name_rules() {
    for name in ["out", "dev", "lib32", "doc.man", "x_y"] {
        assert_eq!(OutputName::new(name).unwrap().as_str(), name);
    }
    assert_eq!(OutputName::out().to_string(), "out");
    assert_eq!(OutputName::new(""), Err(NameError::Empty));
    assert!(matches!(
        OutputName::new(".."),
        Err(NameError::DotOrDotDot { .. })
    ));
    assert!(matches!(
        OutputName::new("a,b"),
        Err(NameError::InvalidChar {
            position: 1,
            found: b',',
            ..
        })
    ));
    assert!(matches!(
        OutputName::from_bytes(b"\xffout"),
        Err(NameError::InvalidChar {
            position: 0,
            found: 0xff,
            ..
        })
    ));
}

// ---- the store directory ----

#[test]
fn store_dir_default_and_validation() {
    assert_eq!(StoreDir::default().as_str(), "/nix/store");
    assert_eq!(
        StoreDir::new("/gnu/store").unwrap().to_string(),
        "/gnu/store"
    );
    assert_eq!(
        StoreDir::new("nix/store"),
        Err(StoreDirError::NotAbsolute {
            dir: "nix/store".into()
        })
    );
    assert_eq!(
        StoreDir::new(""),
        Err(StoreDirError::NotAbsolute { dir: String::new() })
    );
    assert_eq!(StoreDir::new("/"), Err(StoreDirError::Root));
    assert_eq!(
        StoreDir::new("/nix/store/"),
        Err(StoreDirError::TrailingSlash {
            dir: "/nix/store/".into()
        })
    );
    assert_eq!(
        StoreDir::new("/nix//store"),
        Err(StoreDirError::EmptyComponent {
            dir: "/nix//store".into()
        })
    );
    assert_eq!(
        StoreDir::new("/nix/./store"),
        Err(StoreDirError::DotComponent {
            dir: "/nix/./store".into(),
            component: "."
        })
    );
    assert_eq!(
        StoreDir::new("/nix/../store"),
        Err(StoreDirError::DotComponent {
            dir: "/nix/../store".into(),
            component: ".."
        })
    );
    assert!(matches!(
        StoreDir::new("/nix\0/store"),
        Err(StoreDirError::Nul { .. })
    ));
}

#[test]
fn parse_path_in_the_store() {
    let dir = StoreDir::default();
    let full = format!("/nix/store/{HASH}-foo");
    let p = dir.parse_path(full.as_bytes()).unwrap();
    assert_eq!(p.name(), "foo");
    assert_eq!(dir.display_path(&p), full);
    let mut out = b"prefix:".to_vec();
    dir.write_path(&p, &mut out);
    assert_eq!(out, format!("prefix:{full}").into_bytes());
    assert_eq!(dir.join_base_name("anything"), "/nix/store/anything");
    assert!(dir.is_store_path(full.as_bytes()));
}

#[test]
fn parse_path_refuses_paths_outside_the_store() {
    let dir = StoreDir::default();
    // Nix's TEST_PARSE_NEITHER cases that are outside the store.
    for full in [
        String::new(),
        format!("{HASH}-foo"),
        format!("/foo/{HASH}-foo"),
        "/nix/store".to_owned(),
        format!("/nix/store{HASH}-foo"),
        format!("/nix/storex/{HASH}-foo"),
        format!("/nix/stor/{HASH}-foo"),
    ] {
        assert_eq!(
            dir.parse_path(full.as_bytes()),
            Err(StoreDirError::NotInStore {
                path: full.clone(),
                store_dir: "/nix/store".into()
            }),
            "{full}"
        );
    }
    let e = dir.parse_path(b"/tmp/x").unwrap_err().to_string();
    assert_eq!(
        e,
        "path '/tmp/x' is not in the store: expected '/nix/store/<hash>-<name>'"
    );
}

#[test]
fn parse_path_refuses_subpaths() {
    let dir = StoreDir::default();
    let full = format!("/nix/store/{HASH}-foo/bin/sh");
    match dir.parse_path(full.as_bytes()) {
        Err(StoreDirError::Subpath {
            path,
            store_path,
            rest,
            ..
        }) => {
            assert_eq!(path, full);
            assert_eq!(store_path.name(), "foo");
            assert_eq!(rest, "/bin/sh");
        }
        other => panic!("{other:?}"),
    }
    // Trailing slash: non-canonical, refused as Nix's canonical reader does.
    let full = format!("/nix/store/{HASH}-foo/");
    assert!(
        matches!(dir.parse_path(full.as_bytes()), Err(StoreDirError::Subpath { rest, .. }) if rest == "/")
    );
    // split_path gives both parts.
    let full = format!("/nix/store/{HASH}-bash/bin/sh");
    let (p, rest) = dir.split_path(full.as_bytes()).unwrap();
    assert_eq!((p.name(), rest), ("bash", &b"/bin/sh"[..]));
    let e = dir
        .parse_path(format!("/nix/store/{HASH}-foo/bin").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("found '/bin' after it"), "{e}");
}

#[test]
fn parse_path_refuses_non_canonical_spellings() {
    // Nix's TEST_ONLY_PARSE_NON_CANONICAL: its canonical reader refuses these.
    let dir = StoreDir::default();
    for full in [
        format!("/nix/store//{HASH}-foo"),
        format!("/nix/store/./{HASH}-foo"),
        format!("/nix/store/bar/../{HASH}-foo"),
    ] {
        assert!(dir.parse_path(full.as_bytes()).is_err(), "{full}");
    }
}

#[test]
fn parse_path_reports_bad_base_names() {
    let dir = StoreDir::default();
    let full = format!("/nix/store/{HASH}-.");
    assert_eq!(
        dir.parse_path(full.as_bytes()),
        Err(StoreDirError::InvalidStorePath {
            path: full.clone(),
            source: StorePathError::InvalidName {
                base_name: format!("{HASH}-."),
                source: NameError::DotOrDotDot { name: ".".into() }
            }
        })
    );
    assert!(matches!(
        dir.parse_path(b"/nix/store/"),
        Err(StoreDirError::InvalidStorePath {
            source: StorePathError::TooShort { len: 0, .. },
            ..
        })
    ));
}

#[test]
fn another_store_dir() {
    let dir = StoreDir::new("/home/u/store").unwrap();
    let full = format!("/home/u/store/{HASH}-foo");
    let p = dir.parse_path(full.as_bytes()).unwrap();
    assert_eq!(dir.display_path(&p), full);
    assert!(StoreDir::default().parse_path(full.as_bytes()).is_err());
    assert!(
        dir.parse_path(format!("/nix/store/{HASH}-foo").as_bytes())
            .is_err()
    );
}

// ---- properties ----

/// A valid base name, built from the rules.
#[derive(Debug, Clone)]
struct ValidBase(String);

const NIX32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
const NAME_CHARS: &[u8] = b"abcXYZ019+-._?=";

impl Arbitrary for ValidBase {
    fn arbitrary(g: &mut Gen) -> Self {
        let hash: String = (0..32)
            .map(|_| char::from(*g.choose(NIX32).expect("non-empty")))
            .collect();
        let len = 1 + usize::arbitrary(g) % MAX_NAME_LEN;
        let mut name: String = (0..len)
            .map(|_| char::from(*g.choose(NAME_CHARS).expect("non-empty")))
            .collect();
        if name == "." || name == ".." || name.starts_with(".-") || name.starts_with("..-") {
            name.insert(0, 'x');
            name.truncate(MAX_NAME_LEN);
        }
        Self(format!("{hash}-{name}"))
    }
}

/// The rules, written independently of the implementation, as Nix's regex
/// `(?!\.\.?(-|$))[0-9a-zA-Z\+\-\._\?=]+` plus the length and hash checks.
fn reference_valid(base: &[u8]) -> bool {
    if base.len() < 34 || base[32] != b'-' || !base[..32].iter().all(|c| NIX32.contains(c)) {
        return false;
    }
    let name = &base[33..];
    let reserved = [&b"."[..], b".."]
        .iter()
        .any(|d| name.starts_with(d) && (name.len() == d.len() || name[d.len()] == b'-'));
    name.len() <= 211
        && !reserved
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
}

#[test]
fn quickcheck_valid_paths_round_trip_through_the_store_dir() {
    fn prop(base: ValidBase) -> bool {
        let dir = StoreDir::default();
        let p = StorePath::from_base_name(base.0.as_bytes()).unwrap();
        let full = dir.display_path(&p);
        let again = dir.parse_path(full.as_bytes()).unwrap();
        let digest_again = StorePath::from_digest(&p.digest(), p.name()).unwrap();
        again == p && p.base_name() == base.0 && digest_again == p
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(ValidBase) -> bool);
}

#[test]
fn quickcheck_acceptance_matches_the_rules() {
    fn prop(base: ValidBase, edits: Vec<(u8, u8)>) -> TestResult {
        let mut bytes = base.0.into_bytes();
        for (at, byte) in edits.into_iter().take(3) {
            let at = usize::from(at) % bytes.len();
            // Mostly bytes near the alphabets, sometimes anything.
            let byte = match byte % 4 {
                0 => byte,
                1 => b".-"[usize::from(byte) % 2],
                _ => *NAME_CHARS
                    .get(usize::from(byte) % NAME_CHARS.len())
                    .unwrap(),
            };
            bytes[at] = byte;
        }
        TestResult::from_bool(StorePath::from_base_name(&bytes).is_ok() == reference_valid(&bytes))
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(ValidBase, Vec<(u8, u8)>) -> TestResult);
}

#[test]
fn quickcheck_no_input_panics() {
    fn prop(bytes: Vec<u8>) -> bool {
        let ok = StorePath::from_base_name(&bytes).is_ok();
        let _ = StoreDir::default().parse_path(&bytes);
        ok == reference_valid(&bytes)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}
