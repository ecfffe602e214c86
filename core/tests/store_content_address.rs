//! Content addresses and methods, from strings real Nix wrote (Nix 2.8:
//! `nix path-info --json` of paths added with `nix-store --add`,
//! `--add-fixed [--recursive]`, `builtins.toFile`, `nix-instantiate`, and the
//! output fields of `.drv` files), and round trips.

use nixwire_core::store::{
    ContentAddress, ContentAddressError, ContentAddressMethod, Hash, HashAlgo, HashError,
    HashFormat,
};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// (content address from Nix, method, hash algorithm, base16 digest).
const REAL: &[(&str, ContentAddressMethod, HashAlgo, &str)] = &[
    // nix-store --add-fixed sha256 hello.txt
    (
        "fixed:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
        ContentAddressMethod::Flat,
        HashAlgo::Sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ),
    // nix-store --add hello.txt
    (
        "fixed:r:sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa",
        ContentAddressMethod::Nar,
        HashAlgo::Sha256,
        "0a430879c266f8b57f4092a0f935cf3facd48bbccde5760d4748ca405171e969",
    ),
    // nix-store --add-fixed sha1 hello.txt
    (
        "fixed:sha1:9m1skbnr5i43n3yypvda5s65vhfwdx5a",
        ContentAddressMethod::Flat,
        HashAlgo::Sha1,
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
    ),
    // builtins.toFile "greeting" "hello"
    (
        "text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
        ContentAddressMethod::Text,
        HashAlgo::Sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ),
    // nix-instantiate of a derivation: the .drv's own content address.
    (
        "text:sha256:1r767w5hzzm1xzvpr6fp0z5w6lfhc5xf304l0lnwpx46nyw1z4id",
        ContentAddressMethod::Text,
        HashAlgo::Sha256,
        "",
    ),
    // nix-store --add-fixed --recursive sha256 dir
    (
        "fixed:r:sha256:00a3r8cv7xaw55wjf3lb0gzmfpgsj083h29s5mslnml9k8c0w0zc",
        ContentAddressMethod::Nar,
        HashAlgo::Sha256,
        "ec030e189a89564b752d3a09381090fa5d57ff038b0e2779295cf5b319ca4301",
    ),
    // nix-store --add-fixed --recursive sha512 dir
    (
        "fixed:r:sha512:3qcydhqixxwxiw2yixq56lbycvx1y94lw57wkfx3llfp1igg5mh1lgjnkgqlkml4fr42s2r4vnlwnlsgs9g0ai12r5i7i6gziss0y2r",
        ContentAddressMethod::Nar,
        HashAlgo::Sha512,
        "",
    ),
];

#[test]
fn real_content_addresses_parse_and_render_identically() {
    for &(text, method, algo, b16) in REAL {
        let ca = ContentAddress::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ca.method, method, "{text}");
        assert_eq!(ca.hash.algo(), algo, "{text}");
        if !b16.is_empty() {
            assert_eq!(ca.hash.to_base16(), b16, "{text}");
        }
        assert_eq!(ca.to_string(), text);
        assert_eq!(ca.render(), text);
        assert_eq!(text.parse::<ContentAddress>().unwrap(), ca);
        assert_eq!(ContentAddress::parse_opt(text).unwrap(), Some(ca));
        assert_eq!(ContentAddress::render_opt(Some(&ca)), text);
    }
}

#[test]
fn the_fixed_output_narhash_matches_the_derivation_field() {
    // The same directory's NAR sha256, as `nix path-info` gives the ca and a
    // .drv gives the output hash (base16): the two spellings agree.
    let ca = ContentAddress::parse(
        "fixed:r:sha256:00a3r8cv7xaw55wjf3lb0gzmfpgsj083h29s5mslnml9k8c0w0zc",
    )
    .unwrap();
    let (method, algo) = ContentAddressMethod::parse_method_algo("r:sha256").unwrap();
    let hash = Hash::parse_unprefixed(
        "ec030e189a89564b752d3a09381090fa5d57ff038b0e2779295cf5b319ca4301",
        algo,
    )
    .unwrap();
    assert_eq!(ContentAddress { method, hash }, ca);
    assert_eq!(ca.method_algo(), "r:sha256");
    // And the narHash Nix reported for that path is the same digest.
    let nar = Hash::parse_sri("sha256-7AMOGJqJVkt1LToJOBCQ+l1X/wOLDid5KVz1sxnKQwE=").unwrap();
    assert_eq!(nar, ca.hash);
}

#[test]
fn hashes_in_a_content_address_may_be_base16_nix32_or_base64() {
    let expected = ContentAddress::parse(
        "fixed:r:sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa",
    )
    .unwrap();
    for format in [HashFormat::Base16, HashFormat::Nix32, HashFormat::Base64] {
        let text = format!("fixed:r:sha256:{}", expected.hash.render(format, false));
        let ca = ContentAddress::parse(&text).unwrap();
        assert_eq!(ca, expected);
        // Rendering is always nix32.
        assert_eq!(ca.to_string(), expected.to_string());
    }
}

#[test]
fn git_content_addresses() {
    // Nix 2.21+ (git-hashing): fixed:git:<algo>:<hash>.
    let text = "fixed:git:sha1:9m1skbnr5i43n3yypvda5s65vhfwdx5a";
    let ca = ContentAddress::parse(text).unwrap();
    assert_eq!(ca.method, ContentAddressMethod::Git);
    assert_eq!(ca.to_string(), text);
    assert_eq!(ca.method_algo(), "git:sha1");
}

#[test]
fn text_accepts_any_algorithm_as_newer_nix_does() {
    let ca = ContentAddress::parse("text:sha1:9m1skbnr5i43n3yypvda5s65vhfwdx5a").unwrap();
    assert_eq!(
        (ca.method, ca.hash.algo()),
        (ContentAddressMethod::Text, HashAlgo::Sha1)
    );
    assert_eq!(ca.method_algo(), "text:sha1");
}

#[test]
fn the_empty_string_is_no_content_address() {
    assert_eq!(ContentAddress::parse_opt("").unwrap(), None);
    assert_eq!(ContentAddress::render_opt(None), "");
    assert!(matches!(
        ContentAddress::parse(""),
        Err(ContentAddressError::NoPrefix { .. })
    ));
}

#[test]
fn refusals_say_what_was_expected() {
    let h = "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic";
    assert_eq!(
        ContentAddress::parse(h),
        Err(ContentAddressError::NoPrefix { input: h.into() })
    );
    let text = format!("source:sha256:{h}");
    assert_eq!(
        ContentAddress::parse(&text),
        Err(ContentAddressError::UnknownPrefix {
            input: text.clone(),
            prefix: "source".into()
        })
    );
    let e = ContentAddress::parse(&text).unwrap_err().to_string();
    assert!(e.contains("expected 'text' or 'fixed'"), "{e}");
    let text = format!("fixed:r:{h}");
    assert_eq!(
        ContentAddress::parse(&text),
        Err(ContentAddressError::NoHashAlgo {
            input: text.clone()
        })
    );
    let text = format!("fixed:nar:sha256:{h}");
    assert!(matches!(
        ContentAddress::parse(&text),
        Err(ContentAddressError::Hash { source: HashError::UnknownAlgo { name }, .. }) if name == "nar"
    ));
    // The hash must have its algorithm's length, and no prefix of its own.
    let text = format!("fixed:sha1:{h}");
    assert!(matches!(
        ContentAddress::parse(&text),
        Err(ContentAddressError::Hash {
            source: HashError::WrongLength {
                algo: HashAlgo::Sha1,
                len: 52,
                ..
            },
            ..
        })
    ));
    let text = format!("fixed:sha256:sha256:{h}");
    assert!(matches!(
        ContentAddress::parse(&text),
        Err(ContentAddressError::Hash {
            source: HashError::WrongLength { .. },
            ..
        })
    ));
    // SRI is not a content-address hash.
    let text = "fixed:sha256:sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";
    assert!(ContentAddress::parse(text).is_err());
}

#[test]
fn method_names_and_prefixes() {
    use ContentAddressMethod::*;
    for (m, name, prefix, long) in [
        (Text, "text", "text:", "text:"),
        (Flat, "flat", "", "fixed:"),
        (Nar, "nar", "r:", "fixed:r:"),
        (Git, "git", "git:", "fixed:git:"),
    ] {
        assert_eq!(m.name(), name);
        assert_eq!(m.to_string(), name);
        assert_eq!(ContentAddressMethod::parse(name).unwrap(), m);
        assert_eq!(name.parse::<ContentAddressMethod>().unwrap(), m);
        assert_eq!(m.prefix(), prefix);
        assert_eq!(m.long_prefix(), long);
        assert_eq!(
            ContentAddressMethod::split_prefix(&format!("{prefix}sha256")),
            (m, "sha256")
        );
        assert_eq!(
            m.render_method_algo(HashAlgo::Sha256),
            format!("{prefix}sha256")
        );
        assert_eq!(
            m.render_with_algo(HashAlgo::Sha256),
            format!("{long}sha256")
        );
        assert_eq!(
            ContentAddressMethod::parse_with_algo(&format!("{long}sha256")).unwrap(),
            (m, HashAlgo::Sha256)
        );
        assert_eq!(
            ContentAddressMethod::parse_method_algo(&format!("{prefix}sha256")).unwrap(),
            (m, HashAlgo::Sha256)
        );
    }
    assert_eq!(
        ContentAddressMethod::parse("recursive"),
        Err(ContentAddressError::UnknownMethod {
            name: "recursive".into()
        })
    );
}

#[test]
fn derivation_output_hash_algo_fields() {
    // From real .drv files: a recursive sha256 FOD and a flat sha1 FOD.
    assert_eq!(
        ContentAddressMethod::parse_method_algo("r:sha256").unwrap(),
        (ContentAddressMethod::Nar, HashAlgo::Sha256)
    );
    assert_eq!(
        ContentAddressMethod::parse_method_algo("sha1").unwrap(),
        (ContentAddressMethod::Flat, HashAlgo::Sha1)
    );
    // The long form is not a hash algo field.
    assert!(matches!(
        ContentAddressMethod::parse_method_algo("fixed:r:sha256"),
        Err(ContentAddressError::Hash {
            source: HashError::UnknownAlgo { .. },
            ..
        })
    ));
    assert!(ContentAddressMethod::parse_method_algo("r:").is_err());
}

#[test]
fn parse_with_algo_refuses_what_follows_the_algorithm() {
    assert_eq!(
        ContentAddressMethod::parse_with_algo("fixed:r:sha256:extra"),
        Err(ContentAddressError::Trailing {
            input: "fixed:r:sha256:extra".into(),
            rest: "extra".into()
        })
    );
    assert!(matches!(
        ContentAddressMethod::parse_with_algo("r:sha256"),
        Err(ContentAddressError::UnknownPrefix { .. })
    ));
    assert!(matches!(
        ContentAddressMethod::parse_with_algo("fixed"),
        Err(ContentAddressError::NoHashAlgo { .. })
    ));
}

#[derive(Debug, Clone)]
struct AnyCa(ContentAddress);

impl Arbitrary for AnyCa {
    fn arbitrary(g: &mut Gen) -> Self {
        let method = *g.choose(&ContentAddressMethod::ALL).expect("non-empty");
        let algo = *g.choose(&HashAlgo::ALL).expect("non-empty");
        let digest: Vec<u8> = (0..algo.size()).map(|_| u8::arbitrary(g)).collect();
        Self(ContentAddress {
            method,
            hash: Hash::new(algo, &digest).expect("right size"),
        })
    }
}

#[test]
fn quickcheck_content_addresses_round_trip() {
    fn prop(ca: AnyCa) -> bool {
        let ca = ca.0;
        let text = ca.to_string();
        let (m, a) = ContentAddressMethod::parse_method_algo(&ca.method_algo()).unwrap();
        ContentAddress::parse(&text) == Ok(ca)
            && text.starts_with(ca.method.long_prefix())
            && text.ends_with(&ca.hash.to_nix32())
            && (m, a) == (ca.method, ca.hash.algo())
            && ContentAddressMethod::parse_with_algo(&ca.method.render_with_algo(a)) == Ok((m, a))
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(AnyCa) -> bool);
}

#[test]
fn quickcheck_parsers_never_panic() {
    fn prop(text: String) -> bool {
        let _ = ContentAddress::parse(&text);
        let _ = ContentAddress::parse(&format!("fixed:r:sha256:{text}"));
        let _ = ContentAddressMethod::parse_method_algo(&text);
        let _ = ContentAddressMethod::parse_with_algo(&text);
        true
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(String) -> bool);
}
