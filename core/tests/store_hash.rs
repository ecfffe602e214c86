//! Hashes in every text form, against outputs of the real Nix (2.8, Debian's
//! nix-bin: `nix hash to-base32|to-base64|to-sri --type ALGO HEX` and
//! `nix hash to-base16 TEXT` for what Nix accepts), and round trips.
//!
//! With `nix` on PATH, `live_nix_agrees_on_random_digests` asks it again for
//! fresh digests; without, it says so and passes, unless
//! `NIXWIRE_REQUIRE_NIX=1` (set by `.ci/run`).

use std::process::Command;

use nixwire_core::store::nix32;
use nixwire_core::store::{Hash, HashAlgo, HashError, HashFormat, NarHash};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// (algo, base16, nix32, base64, SRI), each produced by Nix 2.8 from the
/// base16 column.
const VECTORS: &[(&str, &str, &str, &str, &str)] = &[
    // The hashes of "hello".
    (
        "md5",
        "5d41402abc4b2a76b9719d911017c592",
        "4jqlbi14cxf6wpcajbphm40hax",
        "XUFAKrxLKna5cZ2REBfFkg==",
        "md5-XUFAKrxLKna5cZ2REBfFkg==",
    ),
    (
        "sha1",
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
        "9m1skbnr5i43n3yypvda5s65vhfwdx5a",
        "qvTGHdzF6KLavt4PO0gs2a6pQ00=",
        "sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00=",
    ),
    (
        "sha256",
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
        "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
        "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
    ),
    (
        "sha512",
        "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043",
        "11w1pmwfdpz9pisbhp5qiv38q6dmidq2ipcqykw3p0sb6yrqcij79rwcwcjbxyzwbdal349qbxrncbk7pmd6snljrfpiwv2pljd4wcv",
        "m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==",
        "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==",
    ),
    // All zeros, all ones, a single 1 in byte 0, random.
    (
        "md5",
        "00000000000000000000000000000000",
        "00000000000000000000000000",
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "md5-AAAAAAAAAAAAAAAAAAAAAA==",
    ),
    (
        "md5",
        "ffffffffffffffffffffffffffffffff",
        "7zzzzzzzzzzzzzzzzzzzzzzzzz",
        "/////////////////////w==",
        "md5-/////////////////////w==",
    ),
    (
        "md5",
        "01000000000000000000000000000000",
        "00000000000000000000000001",
        "AQAAAAAAAAAAAAAAAAAAAA==",
        "md5-AQAAAAAAAAAAAAAAAAAAAA==",
    ),
    (
        "md5",
        "043761d3c07e58b996b22b84c8f20322",
        "120grci11bnabbjn3yq39n2dq4",
        "BDdh08B+WLmWsiuEyPIDIg==",
        "md5-BDdh08B+WLmWsiuEyPIDIg==",
    ),
    (
        "sha1",
        "0000000000000000000000000000000000000000",
        "00000000000000000000000000000000",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ),
    (
        "sha1",
        "ffffffffffffffffffffffffffffffffffffffff",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "//////////////////////////8=",
        "sha1-//////////////////////////8=",
    ),
    (
        "sha1",
        "0100000000000000000000000000000000000000",
        "00000000000000000000000000000001",
        "AQAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "sha1-AQAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ),
    (
        "sha1",
        "d031bce5279f66e2613c725910c05c9aae653ded",
        "xlynbblsbk010nbj7ihy4rlz4zjvqcfh",
        "0DG85SefZuJhPHJZEMBcmq5lPe0=",
        "sha1-0DG85SefZuJhPHJZEMBcmq5lPe0=",
    ),
    (
        "sha256",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ),
    (
        "sha256",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "//////////////////////////////////////////8=",
        "sha256-//////////////////////////////////////////8=",
    ),
    (
        "sha256",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000001",
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "sha256-AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ),
    (
        "sha256",
        "59ae5e8076e1f821914393c24342aa1d71d4259f57ce2fbed8cc24087f6c443e",
        "0gj4dizhh96cv2z2zkjpkwjx8w8xm9147hlk8f8j3y71fs05xbjr",
        "Wa5egHbh+CGRQ5PCQ0KqHXHUJZ9Xzi++2MwkCH9sRD4=",
        "sha256-Wa5egHbh+CGRQ5PCQ0KqHXHUJZ9Xzi++2MwkCH9sRD4=",
    ),
    (
        "sha256",
        "a2c1f1be51284edee11415f1e060d1b75757800d144c24c90423cd790106aadf",
        "1pxa0q0pkk930k4j8k0l1n05fmxps5hf1w8m2khxwki8a6zg3hd2",
        "osHxvlEoTt7hFBXx4GDRt1dXgA0UTCTJBCPNeQEGqt8=",
        "sha256-osHxvlEoTt7hFBXx4GDRt1dXgA0UTCTJBCPNeQEGqt8=",
    ),
    (
        "sha512",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    ),
    (
        "sha512",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "3zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "/////////////////////////////////////////////////////////////////////////////////////w==",
        "sha512-/////////////////////////////////////////////////////////////////////////////////////w==",
    ),
    (
        "sha512",
        "01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "sha512-AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    ),
    (
        "sha512",
        "3b060e85b9a35b05f5f3fc80c529940de750dfb84944cbdee0f6df7d6bbcbead16ec74e076d6c82f6164c2057365b818b273f866fa6dff60094cc427e99f4d19",
        "0clv7z94z24q2b0zxnzlrpqffr1if35fc2w4r315z4dcxp0fkn1dbdypimpvpznw3gcni29p3gm1rqdjhlwb07wygshanx3p62hw1iv",
        "OwYOhbmjWwX18/yAxSmUDedQ37hJRMve4PbffWu8vq0W7HTgdtbIL2FkwgVzZbgYsnP4Zvpt/2AJTMQn6Z9NGQ==",
        "sha512-OwYOhbmjWwX18/yAxSmUDedQ37hJRMve4PbffWu8vq0W7HTgdtbIL2FkwgVzZbgYsnP4Zvpt/2AJTMQn6Z9NGQ==",
    ),
];

const HELLO_16: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const HELLO_32: &str = "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic";
const HELLO_64: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hello() -> Hash {
    Hash::new(HashAlgo::Sha256, &hex(HELLO_16)).expect("32 bytes")
}

#[test]
fn algorithms_and_sizes() {
    let table = [
        (HashAlgo::Md5, "md5", 16, 32, 26, 24),
        (HashAlgo::Sha1, "sha1", 20, 40, 32, 28),
        (HashAlgo::Sha256, "sha256", 32, 64, 52, 44),
        (HashAlgo::Sha512, "sha512", 64, 128, 103, 88),
        (HashAlgo::Blake3, "blake3", 32, 64, 52, 44),
    ];
    for (algo, name, size, b16, b32, b64) in table {
        assert_eq!(algo.name(), name);
        assert_eq!(algo.to_string(), name);
        assert_eq!(name.parse::<HashAlgo>().unwrap(), algo);
        assert_eq!(algo.size(), size);
        assert_eq!(algo.encoded_len(HashFormat::Base16), b16);
        assert_eq!(algo.encoded_len(HashFormat::Nix32), b32);
        assert_eq!(algo.encoded_len(HashFormat::Base64), b64);
    }
    assert_eq!(
        "SHA256".parse::<HashAlgo>(),
        Err(HashError::UnknownAlgo {
            name: "SHA256".into()
        })
    );
}

#[test]
fn every_form_renders_as_nix_does() {
    for &(algo, b16, b32, b64, sri) in VECTORS {
        let algo: HashAlgo = algo.parse().unwrap();
        let h = Hash::new(algo, &hex(b16)).unwrap();
        assert_eq!(h.to_base16(), b16);
        assert_eq!(h.to_nix32(), b32);
        assert_eq!(h.to_base64(), b64);
        assert_eq!(h.to_sri(), sri);
        assert_eq!(h.to_string(), sri);
        assert_eq!(h.render(HashFormat::Base16, true), format!("{algo}:{b16}"));
        assert_eq!(h.render(HashFormat::Nix32, true), format!("{algo}:{b32}"));
        assert_eq!(h.render(HashFormat::Base64, true), format!("{algo}:{b64}"));
        assert_eq!(h.render(HashFormat::Sri, false), sri);
        assert_eq!(h.render(HashFormat::Nix32, false), b32);
        assert_eq!(nix32::encode(&hex(b16)), b32);
        assert_eq!(nix32::decode(b32.as_bytes()).unwrap(), hex(b16));
    }
}

#[test]
fn every_form_parses_as_nix_does() {
    for &(algo_name, b16, b32, b64, sri) in VECTORS {
        let algo: HashAlgo = algo_name.parse().unwrap();
        let h = Hash::new(algo, &hex(b16)).unwrap();
        for (text, format) in [
            (b16, HashFormat::Base16),
            (b32, HashFormat::Nix32),
            (b64, HashFormat::Base64),
        ] {
            let prefixed = format!("{algo_name}:{text}");
            assert_eq!(
                Hash::parse_any_with_format(&prefixed, None).unwrap(),
                (h, format)
            );
            assert_eq!(Hash::parse_any(&prefixed, Some(algo)).unwrap(), h);
            assert_eq!(Hash::parse_any(text, Some(algo)).unwrap(), h);
            assert_eq!(Hash::parse_prefixed(&prefixed).unwrap(), h);
            assert_eq!(prefixed.parse::<Hash>().unwrap(), h);
            assert_eq!(Hash::parse_unprefixed(text, algo).unwrap(), h);
            assert_eq!(Hash::parse_explicit(text, algo, format).unwrap(), h);
        }
        assert_eq!(
            Hash::parse_any_with_format(sri, None).unwrap(),
            (h, HashFormat::Sri)
        );
        assert_eq!(Hash::parse_sri(sri).unwrap(), h);
        assert_eq!(sri.parse::<Hash>().unwrap(), h);
    }
}

#[test]
fn base16_accepts_upper_case() {
    // nix hash to-base16 sha256:2CF24DBA... gives the lowercase digest.
    let upper = format!("sha256:{}", HELLO_16.to_uppercase());
    assert_eq!(Hash::parse_any(&upper, None).unwrap(), hello());
    let mixed = format!(
        "sha256:{}{}",
        &HELLO_16[..10].to_uppercase(),
        &HELLO_16[10..]
    );
    assert_eq!(Hash::parse_any(&mixed, None).unwrap(), hello());
}

#[test]
fn base64_is_read_leniently_like_nix() {
    // Each of these, given to `nix hash to-base16`, gives the hello digest.
    for text in [
        "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ",
        "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ==",
        "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=garbage!",
        "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=",
        "sha256-LPJNul+wow4m6Dsq\nxbninhsWHlwfp0JecwQzYpOLmCQ=",
        "sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
        "sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=",
    ] {
        assert_eq!(Hash::parse_any(text, None), Ok(hello()), "{text:?}");
    }
}

#[test]
fn nix32_first_digit_carries_the_top_bits() {
    // `nix hash to-base16 sha256:194qif...` changes the last byte 0x24 to
    // 0xa4: the first digit holds the digest's top bit.
    let h = Hash::parse_any(
        "sha256:194qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
        None,
    )
    .unwrap();
    assert_eq!(
        h.to_base16(),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98a4"
    );
    // A first digit of 2 or more sets a bit past the 256th: refused.
    for first in ['2', 'z'] {
        let text = format!("{first}{}", &HELLO_32[1..]);
        assert_eq!(
            Hash::parse_any(&text, Some(HashAlgo::Sha256)),
            Err(HashError::Nix32Overflow {
                input: text.clone(),
                algo: HashAlgo::Sha256
            })
        );
    }
    // sha1 has no spare bits: 'z' first is fine.
    Hash::parse_any(&format!("sha1:z{}", "0".repeat(31)), None).unwrap();
    // md5's first digit may go up to 7, sha512's up to 3.
    Hash::parse_any(&format!("md5:7{}", "0".repeat(25)), None).unwrap();
    assert!(Hash::parse_any(&format!("md5:8{}", "0".repeat(25)), None).is_err());
    Hash::parse_any(&format!("sha512:3{}", "0".repeat(102)), None).unwrap();
    assert!(Hash::parse_any(&format!("sha512:4{}", "0".repeat(102)), None).is_err());
}

#[test]
fn refusals_say_what_was_expected() {
    // The length tells the format; any other length is refused.
    let short = &HELLO_32[..51];
    assert_eq!(
        Hash::parse_any(&format!("sha256:{short}"), None),
        Err(HashError::WrongLength {
            input: short.into(),
            algo: HashAlgo::Sha256,
            len: 51
        })
    );
    let e = Hash::parse_any(&format!("sha256:{short}"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 (base16), 52 (nix32) or 44 (base64)"), "{e}");
    // Unpadded base64 without SRI has the wrong length (Nix refuses it too).
    assert!(matches!(
        Hash::parse_any("sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ", None),
        Err(HashError::WrongLength { len: 43, .. })
    ));
    // An empty hash.
    assert!(matches!(
        Hash::parse_any("sha256:", None),
        Err(HashError::WrongLength { len: 0, .. })
    ));
    // Digits outside the alphabet.
    let bad = format!("z{}", &HELLO_32[1..]).replace('9', "e");
    assert_eq!(
        Hash::parse_any(&format!("sha256:{bad}"), None),
        Err(HashError::InvalidChar {
            input: bad.clone(),
            format: HashFormat::Nix32,
            position: 1,
            found: b'e'
        })
    );
    let bad16 = HELLO_16.replacen('c', "g", 1);
    assert_eq!(
        Hash::parse_any(&format!("sha256:{bad16}"), None),
        Err(HashError::InvalidChar {
            input: bad16.clone(),
            format: HashFormat::Base16,
            position: 1,
            found: b'g'
        })
    );
    let bad64 = HELLO_64.replacen('+', "-", 1);
    assert!(matches!(
        Hash::parse_any(&format!("sha256:{bad64}"), None),
        Err(HashError::InvalidChar {
            format: HashFormat::Base64,
            found: b'-',
            ..
        })
    ));
    // Algorithm names: unknown, upper case, missing, mismatched.
    assert_eq!(
        Hash::parse_any(&format!("SHA256:{HELLO_32}"), None),
        Err(HashError::UnknownAlgo {
            name: "SHA256".into()
        })
    );
    assert_eq!(
        Hash::parse_any(HELLO_32, None),
        Err(HashError::MissingAlgo {
            input: HELLO_32.into()
        })
    );
    assert_eq!(
        Hash::parse_prefixed(HELLO_32),
        Err(HashError::MissingAlgo {
            input: HELLO_32.into()
        })
    );
    let e = Hash::parse_any(HELLO_32, None).unwrap_err().to_string();
    assert!(
        e.contains("expected '<algo>:<hash>' or '<algo>-<base64>'"),
        "{e}"
    );
    let text = format!("sha256:{HELLO_32}");
    assert_eq!(
        Hash::parse_any(&text, Some(HashAlgo::Sha1)),
        Err(HashError::AlgoMismatch {
            input: text.clone(),
            expected: HashAlgo::Sha1,
            found: HashAlgo::Sha256
        })
    );
    // SRI: always base64, whatever the length; nix32 there is refused.
    assert!(matches!(
        Hash::parse_any(&format!("sha256-{HELLO_32}"), None),
        Err(HashError::WrongSize {
            format: HashFormat::Sri,
            expected: 32,
            found: 39,
            ..
        })
    ));
    assert!(matches!(
        Hash::parse_sri("sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmC"),
        Err(HashError::WrongSize {
            format: HashFormat::Sri,
            expected: 32,
            found: 31,
            ..
        })
    ));
    assert!(matches!(
        Hash::parse_sri("sha256-"),
        Err(HashError::WrongSize { found: 0, .. })
    ));
    assert_eq!(
        Hash::parse_sri(HELLO_64),
        Err(HashError::NotSri {
            input: HELLO_64.into()
        })
    );
    assert!(matches!(
        Hash::new(HashAlgo::Sha1, &[0; 32]),
        Err(HashError::WrongSize {
            expected: 20,
            found: 32,
            ..
        })
    ));
}

#[test]
fn blake3_reads_and_renders() {
    // Nix 2.27+ with the blake3-hashes feature: same shape as sha256.
    let h = Hash::parse_any(&format!("blake3:{HELLO_32}"), None).unwrap();
    assert_eq!(h.algo(), HashAlgo::Blake3);
    assert_eq!(h.to_sri(), format!("blake3-{HELLO_64}"));
    assert_ne!(h, hello());
}

#[test]
fn nar_hash() {
    let n = NarHash::parse(HELLO_16).unwrap();
    assert_eq!(n.as_bytes().to_vec(), hex(HELLO_16));
    assert_eq!(n.to_base16(), HELLO_16);
    assert_eq!(n.to_nix32(), HELLO_32);
    assert_eq!(n.to_sri(), format!("sha256-{HELLO_64}"));
    assert_eq!(n.to_string(), format!("sha256-{HELLO_64}"));
    assert_eq!(
        n.render(HashFormat::Nix32, true),
        format!("sha256:{HELLO_32}")
    );
    for text in [
        HELLO_32,
        HELLO_64,
        &format!("sha256:{HELLO_32}"),
        &format!("sha256-{HELLO_64}"),
    ] {
        assert_eq!(NarHash::parse(text).unwrap(), n, "{text}");
    }
    assert_eq!(Hash::from(n), hello());
    assert_eq!(NarHash::try_from(hello()).unwrap(), n);
    let md5 = Hash::parse_any("md5:4jqlbi14cxf6wpcajbphm40hax", None).unwrap();
    assert!(matches!(
        NarHash::try_from(md5),
        Err(HashError::AlgoMismatch {
            expected: HashAlgo::Sha256,
            found: HashAlgo::Md5,
            ..
        })
    ));
    assert!(matches!(
        NarHash::parse("md5:4jqlbi14cxf6wpcajbphm40hax"),
        Err(HashError::AlgoMismatch {
            expected: HashAlgo::Sha256,
            found: HashAlgo::Md5,
            ..
        })
    ));
    // A real narHash from `nix path-info --json` (a file containing "hello").
    let real = NarHash::parse("sha256-CkMIecJm+LV/QJKg+TXPP6zUi7zN5XYNR0jKQFFx6Wk=").unwrap();
    assert_eq!(
        real.to_sri(),
        "sha256-CkMIecJm+LV/QJKg+TXPP6zUi7zN5XYNR0jKQFFx6Wk="
    );
}

// ---- properties ----

#[derive(Debug, Clone)]
struct AnyHash(Hash);

impl Arbitrary for AnyHash {
    fn arbitrary(g: &mut Gen) -> Self {
        let algo = *g.choose(&HashAlgo::ALL).expect("non-empty");
        let digest: Vec<u8> = (0..algo.size()).map(|_| u8::arbitrary(g)).collect();
        Self(Hash::new(algo, &digest).expect("right size"))
    }
}

#[test]
fn quickcheck_every_rendering_parses_back() {
    fn prop(h: AnyHash) -> bool {
        let h = h.0;
        let algo = Some(h.algo());
        [
            HashFormat::Base16,
            HashFormat::Nix32,
            HashFormat::Base64,
            HashFormat::Sri,
        ]
        .into_iter()
        .all(|f| {
            Hash::parse_any_with_format(&h.render(f, true), None) == Ok((h, f))
                && Hash::parse_explicit(
                    &h.render(f, false).replace(&format!("{}-", h.algo()), ""),
                    h.algo(),
                    f,
                ) == Ok(h)
                && (f == HashFormat::Sri || Hash::parse_any(&h.render(f, false), algo) == Ok(h))
        }) && h.to_string().parse::<Hash>() == Ok(h)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(AnyHash) -> bool);
}

/// Nix32 written independently: the digest as a little-endian number, in
/// base 32, most significant digit first, by long division.
fn reference_nix32(bytes: &[u8]) -> String {
    let mut number = bytes.to_vec(); // little-endian
    let mut digits = Vec::new();
    for _ in 0..nix32::encoded_len(bytes.len()) {
        let mut rem = 0u32;
        for b in number.iter_mut().rev() {
            let cur = rem << 8 | u32::from(*b);
            *b = (cur / 32) as u8;
            rem = cur % 32;
        }
        digits.push(nix32::ALPHABET[rem as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII")
}

#[test]
fn quickcheck_nix32_is_little_endian_base_32() {
    fn prop(bytes: Vec<u8>) -> bool {
        let text = nix32::encode(&bytes);
        text == reference_nix32(&bytes)
            && text.len() == nix32::encoded_len(bytes.len())
            && nix32::decode(text.as_bytes()).unwrap() == bytes
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn quickcheck_parsers_never_panic() {
    fn prop(text: String, algo: Option<u8>) -> bool {
        let algo = algo.map(|i| HashAlgo::ALL[usize::from(i) % HashAlgo::ALL.len()]);
        let _ = Hash::parse_any(&text, algo);
        let _ = Hash::parse_sri(&text);
        let _ = NarHash::parse(&text);
        let _ = nix32::decode(text.as_bytes());
        if let Some(a) = algo {
            for f in [
                HashFormat::Base16,
                HashFormat::Nix32,
                HashFormat::Base64,
                HashFormat::Sri,
            ] {
                let _ = Hash::parse_explicit(&text, a, f);
            }
        }
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(String, Option<u8>) -> bool);
}

// ---- against the real Nix, when it is here ----

fn nix_hash(args: &[String]) -> Option<Vec<String>> {
    // Settings of its own, whatever the machine's /etc/nix says: an empty
    // configuration directory, no user files, the one feature it needs.
    let conf = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nixwire-empty-nix-conf");
    std::fs::create_dir_all(&conf).expect("conf dir");
    let out = Command::new("nix")
        .env("NIX_CONF_DIR", &conf)
        .env("NIX_USER_CONF_FILES", "")
        .env_remove("NIX_CONFIG")
        .args(["--extra-experimental-features", "nix-command", "hash"])
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "nix hash {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn live_nix_agrees_on_random_digests() {
    if nix_hash(&["to-base16".into(), format!("sha256:{HELLO_32}")]).is_none() {
        assert!(
            std::env::var_os("NIXWIRE_REQUIRE_NIX").is_none(),
            "NIXWIRE_REQUIRE_NIX is set but nix is not on PATH"
        );
        eprintln!("nix not found: skipping the live comparison (install nix-bin)");
        return;
    }
    let mut g = Gen::new(64);
    for algo in [
        HashAlgo::Md5,
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha512,
    ] {
        let hashes: Vec<Hash> = (0..16)
            .map(|_| {
                let digest: Vec<u8> = (0..algo.size()).map(|_| u8::arbitrary(&mut g)).collect();
                Hash::new(algo, &digest).unwrap()
            })
            .collect();
        // Nix renders our base16 in each form as we do.
        for (cmd, render) in [
            ("to-base32", Hash::to_nix32 as fn(&Hash) -> String),
            ("to-base64", Hash::to_base64),
            ("to-sri", Hash::to_sri),
        ] {
            let mut args = vec![cmd.to_owned(), "--type".into(), algo.name().into()];
            args.extend(hashes.iter().map(Hash::to_base16));
            let theirs = nix_hash(&args).unwrap();
            let ours: Vec<String> = hashes.iter().map(render).collect();
            assert_eq!(theirs, ours, "{cmd} {algo}");
        }
        // And reads each of our renderings back to the same digest.
        let mut args = vec!["to-base16".to_owned()];
        for h in &hashes {
            args.push(h.render(HashFormat::Nix32, true));
            args.push(h.render(HashFormat::Base64, true));
            args.push(h.to_sri());
        }
        let theirs = nix_hash(&args).unwrap();
        let ours: Vec<String> = hashes
            .iter()
            .flat_map(|h| [h.to_base16(), h.to_base16(), h.to_base16()])
            .collect();
        assert_eq!(theirs, ours, "to-base16 {algo}");
    }
}
