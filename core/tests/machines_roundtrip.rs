//! quickcheck: rendering machines and parsing them back gives the same
//! machines, and no input makes the parser panic.
#![cfg(feature = "machines")]

use std::collections::BTreeSet;

use nixwire_core::machines::parse::{parse_lines, render_line};
use nixwire_core::machines::{Machine, NoFiles, ParseOptions, parse};
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn word(g: &mut Gen, alphabet: &[char], max: usize) -> String {
    let len = 1 + usize::arbitrary(g) % max;
    (0..len)
        .map(|_| *g.choose(alphabet).unwrap_or(&'a'))
        .collect()
}

const WORD: &[char] = &[
    'a', 'b', 'x', 'z', '0', '9', '-', '_', '.', '+', ':', '@', 'é', '=',
];

/// Systems never contain `=` here: with format detection on, a systems
/// column with `=` in a file whose lines look like `key = value` is taken as
/// broken TOML (Lix's rule); the strict parser is tested with `=` in the
/// feature columns instead.
const SYSTEM: &[char] = &[
    'a', 'b', 'x', 'z', '0', '9', '-', '_', '.', '+', ':', '@', 'é',
];

fn systems(g: &mut Gen) -> BTreeSet<String> {
    let n = usize::arbitrary(g) % 4;
    (0..n)
        .map(|_| word(g, SYSTEM, 8))
        .filter(|w| w != "-")
        .collect()
}

fn words(g: &mut Gen) -> BTreeSet<String> {
    let n = usize::arbitrary(g) % 4;
    (0..n)
        .map(|_| word(g, WORD, 8))
        .filter(|w| w != "-")
        .collect()
}

/// A machine that the line format can represent.
#[derive(Debug, Clone)]
struct Representable(Machine);

impl Arbitrary for Representable {
    fn arbitrary(g: &mut Gen) -> Self {
        let host = word(g, &['a', 'b', 'c', '1', '.', '-'], 12);
        let uri = match u8::arbitrary(g) % 5 {
            0 => format!("ssh://nix@{host}"),
            1 => format!("ssh-ng://{host}:22"),
            2 => "local".to_owned(),
            3 => format!("/nix/{host}"),
            _ => format!("daemon?root=/{host}"),
        };
        let speed = loop {
            let candidate = match u8::arbitrary(g) % 3 {
                0 => f32::from_bits(u32::arbitrary(g)),
                1 => f32::from(u16::arbitrary(g)) / 7.0,
                _ => f32::from(u8::arbitrary(g)),
            };
            if candidate.is_finite() && candidate > 0.0 {
                break candidate;
            }
        };
        let key_bytes: Vec<u8> = Vec::arbitrary(g);
        Self(Machine {
            uri,
            systems: systems(g),
            ssh_key: bool::arbitrary(g).then(|| format!("/keys/{}", word(g, WORD, 10))),
            max_jobs: u32::arbitrary(g),
            speed_factor: speed,
            supported_features: words(g),
            mandatory_features: words(g),
            ssh_public_host_key: (!key_bytes.is_empty()).then(|| encode(&key_bytes)),
        })
    }
}

/// Test-side base64, independent of the crate's own.
fn encode(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = String::new();
    for b in bytes {
        bits.push_str(&format!("{b:08b}"));
    }
    while !bits.len().is_multiple_of(6) {
        bits.push('0');
    }
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let v = c
                .iter()
                .fold(0usize, |acc, b| acc * 2 + usize::from(*b == b'1'));
            char::from(A[v])
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

fn options(g: &mut Gen) -> ParseOptions {
    ParseOptions {
        default_systems: systems(g),
        ..ParseOptions::default()
    }
}

#[derive(Debug, Clone)]
struct Case {
    machines: Vec<Representable>,
    options_seed: ParseOptions,
    separator: &'static str,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 5;
        Self {
            machines: (0..n).map(|_| Representable::arbitrary(g)).collect(),
            options_seed: options(g),
            separator: *g
                .choose(&["\n", " ; ", "\r\n", "\n# comment ; x\n"])
                .unwrap_or(&"\n"),
        }
    }
}

fn round_trips(case: Case) -> bool {
    let expected: Vec<Machine> = case.machines.iter().map(|r| r.0.clone()).collect();
    let mut lines = Vec::new();
    for m in &expected {
        match render_line(m) {
            Ok(l) => lines.push(l),
            Err(e) => {
                eprintln!("render failed for {m:?}: {e}");
                return false;
            }
        }
    }
    let text = lines.join(case.separator);
    let strict = parse_lines("m", &text, &case.options_seed, &NoFiles);
    let detected = parse("m", &text, &case.options_seed, &NoFiles);
    match (strict, detected) {
        (Ok(a), Ok(b)) => {
            let ok = a.machine_list() == expected && b.machine_list() == expected;
            if !ok {
                eprintln!("text {text:?}\nparsed {:?}", a.machine_list());
            }
            ok
        }
        (a, b) => {
            eprintln!("text {text:?} failed: {:?} / {:?}", a.err(), b.err());
            false
        }
    }
}

#[test]
fn render_then_parse_gives_the_same_machines() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(round_trips as fn(Case) -> bool);
}

/// Text built from the characters that matter to both formats.
#[derive(Debug, Clone)]
struct Noise(String);

impl Arbitrary for Noise {
    fn arbitrary(g: &mut Gen) -> Self {
        const ALPHABET: &[&str] = &[
            " ",
            "\t",
            "\r",
            "\n",
            ";",
            "#",
            "@",
            "-",
            ",",
            "=",
            "[",
            "]",
            "\"",
            "a",
            "0",
            ".",
            "+",
            "/",
            "_",
            "é",
            "machines",
            "uri",
            "version",
            "1",
            "nan",
            "-3",
            "{}",
            "[machines.a]",
            "uri = \"x\"",
            "jobs = ",
            "speed-factor = ",
        ];
        let n = usize::arbitrary(g) % 40;
        Self(
            (0..n)
                .map(|_| *g.choose(ALPHABET).unwrap_or(&"a"))
                .collect(),
        )
    }
}

fn never_panics(noise: Noise) -> bool {
    let files =
        |_: &std::path::Path| -> std::io::Result<Option<String>> { Ok(Some("@/loop".to_owned())) };
    let _ = parse("noise", &noise.0, &ParseOptions::default(), &files);
    let _ = parse_lines("noise", &noise.0, &ParseOptions::default(), &NoFiles);
    true
}

#[test]
fn parsing_any_text_never_panics() {
    QuickCheck::new()
        .tests(3000)
        .quickcheck(never_panics as fn(Noise) -> bool);
}

#[test]
fn unrepresentable_values_are_refused_not_mangled() {
    let base = Machine::with_defaults("ssh://h", BTreeSet::new());
    let cases = [
        Machine {
            uri: "host".into(),
            ..base.clone()
        },
        Machine {
            uri: "@h".into(),
            ..base.clone()
        },
        Machine {
            ssh_key: Some("a b".into()),
            ..base.clone()
        },
        Machine {
            ssh_key: Some("-".into()),
            ..base.clone()
        },
        Machine {
            speed_factor: 0.0,
            ..base.clone()
        },
        Machine {
            speed_factor: f32::NAN,
            ..base.clone()
        },
        Machine {
            systems: BTreeSet::from(["-".to_owned()]),
            ..base.clone()
        },
        Machine {
            supported_features: BTreeSet::from(["a,b".to_owned()]),
            ..base.clone()
        },
        Machine {
            ssh_public_host_key: Some("not_base64".into()),
            ..base.clone()
        },
    ];
    for m in cases {
        assert!(render_line(&m).is_err(), "{m:?} should not render");
    }
    assert_eq!(
        render_line(&base).ok().as_deref(),
        Some("ssh://h , - 1 1 - - -")
    );
}
