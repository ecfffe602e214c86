//! Signatures: kept byte for byte whatever they hold; read as Nix 2.34
//! reads them. The signed examples were made by Nix 2.8 (`nix store sign`
//! with a key from `nix-store --generate-binary-cache-key nixwire-test-1`).

use nixwire_core::store::{Signature, SignatureError};

const REAL: &[&str] = &[
    "nixwire-test-1:h6vj3TBe7vJcVyDl0d8ATim94Bv/89V4F+icyqsECqxfdM2O7aEP1mKP1N68iwvbbiSK6ObRHoIJis3tNqCGBA==",
    "nixwire-test-1:VmWybZb0djHaxzICJbBs63LGS9upGrwY0O78dOsDyVWuDwdiqCl/h9MT9QIMUyDlfiksRGECAvxgfaJ+XYirBg==",
];

#[test]
fn real_signatures() {
    for &text in REAL {
        let sig = Signature::parse(text).unwrap();
        assert_eq!(sig.as_str(), text);
        assert_eq!(sig.to_string(), text);
        assert_eq!(sig.key_name(), Some("nixwire-test-1"));
        assert_eq!(sig.encoded(), Some(&text["nixwire-test-1:".len()..]));
        let bytes = sig.bytes().unwrap();
        assert_eq!(bytes.len(), 64, "an ed25519 signature");
        assert_eq!(Signature::from_parts("nixwire-test-1", &bytes), sig);
        assert_eq!(sig.canonical().unwrap(), sig);
        assert_eq!(sig.clone().into_string(), text);
    }
}

#[test]
fn any_text_is_kept_exactly() {
    for text in [
        "",
        "no colon",
        ":empty-name",
        "k:",
        "k:not base64!",
        "k:YQ",
        "a:b:c",
        "ünï:cødé",
    ] {
        let sig = Signature::new(text);
        assert_eq!(sig.as_str(), text);
        assert_eq!(text.parse::<Signature>().unwrap(), sig);
        assert_eq!(Signature::from(text), sig);
        assert_eq!(Signature::from(text.to_owned()), sig);
        assert_eq!(
            Signature::from_bytes(text.as_bytes().to_vec()).unwrap(),
            sig
        );
    }
    assert_eq!(
        Signature::from_bytes(b"k:\xffx".to_vec()),
        Err(SignatureError::NotUtf8 {
            position: 2,
            found: 0xff
        })
    );
}

#[test]
fn what_nix_2_34_refuses() {
    assert_eq!(
        Signature::parse("no colon"),
        Err(SignatureError::NoColon {
            text: "no colon".into()
        })
    );
    assert_eq!(
        Signature::parse(":YWJj"),
        Err(SignatureError::EmptyKeyName {
            text: ":YWJj".into()
        })
    );
    assert_eq!(
        Signature::parse("k:"),
        Err(SignatureError::Empty { text: "k:".into() })
    );
    // One base64 digit is 6 bits: no whole byte.
    assert_eq!(
        Signature::parse("k:Y"),
        Err(SignatureError::Empty { text: "k:Y".into() })
    );
    assert_eq!(
        Signature::parse("k:=YWJj"),
        Err(SignatureError::Empty {
            text: "k:=YWJj".into()
        })
    );
    assert_eq!(
        Signature::parse("k:YW!j"),
        Err(SignatureError::InvalidBase64 {
            text: "k:YW!j".into(),
            position: 2,
            found: b'!'
        })
    );
    let e = Signature::parse("no colon").unwrap_err().to_string();
    assert!(e.contains("expected '<key-name>:<base64>'"), "{e}");
    let e = Signature::parse("k:YW!j").unwrap_err().to_string();
    assert!(e.contains("'!'") && e.contains("not base64"), "{e}");
}

#[test]
fn accessors_on_odd_signatures() {
    assert_eq!(Signature::new("no colon").key_name(), None);
    assert_eq!(Signature::new("no colon").encoded(), None);
    assert_eq!(Signature::new(":x").key_name(), None);
    assert_eq!(Signature::new(":x").encoded(), Some("x"));
    // The name ends at the first colon; the rest is the signature.
    let sig = Signature::new("a:b:c");
    assert_eq!(sig.key_name(), Some("a"));
    assert_eq!(sig.encoded(), Some("b:c"));
    assert!(matches!(
        sig.bytes(),
        Err(SignatureError::InvalidBase64 {
            position: 1,
            found: b':',
            ..
        })
    ));
}

#[test]
fn lenient_base64_and_the_canonical_form() {
    // Nix 2.34 decodes leniently and writes back padded base64.
    let sig = Signature::parse("k:YWJjZA").unwrap();
    assert_eq!(sig.bytes().unwrap(), b"abcd");
    assert_eq!(sig.as_str(), "k:YWJjZA", "kept as it came");
    assert_eq!(sig.canonical().unwrap().as_str(), "k:YWJjZA==");
    let sig = Signature::parse("k:YWJj\nZA==trailing").unwrap();
    assert_eq!(sig.bytes().unwrap(), b"abcd");
    assert!(Signature::new("k:").canonical().is_err());
}

#[test]
fn ordering_is_the_texts() {
    let mut sigs = [
        Signature::new("b:AA=="),
        Signature::new("a-b:AA=="),
        Signature::new("a:AA=="),
    ];
    sigs.sort();
    let texts: Vec<_> = sigs.iter().map(Signature::as_str).collect();
    assert_eq!(texts, ["a-b:AA==", "a:AA==", "b:AA=="]);
}
