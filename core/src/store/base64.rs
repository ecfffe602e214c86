//! Base64 as Nix reads and writes it (`src/libutil/base-n.cc`).
//!
//! Writing is standard base64 with padding (`data-encoding`'s `BASE64`).
//! Reading is Nix's own lenient decoder, which `data-encoding` cannot
//! express: it stops at the first `=` (ignoring whatever follows), skips
//! `\n`, does not require padding, and drops leftover low bits without
//! checking that they are zero. Any other byte outside the standard
//! alphabet is an error.

/// A byte that is not base64, at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidByte {
    pub(crate) position: usize,
    pub(crate) found: u8,
}

/// Standard padded base64.
pub(crate) fn encode(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Checks `text` as Nix's `base64::decode` reads it (see
/// [`decode_lenient`]); on failure, the byte offset and the first character
/// it would refuse. For machines files' host keys, which are checked and
/// kept encoded.
#[cfg_attr(not(feature = "machines"), allow(dead_code))]
pub(crate) fn check(text: &str) -> Result<(), (usize, char)> {
    match decode_lenient(text.as_bytes()) {
        Ok(_) => Ok(()),
        // A byte outside the alphabet is ASCII or starts a character, so
        // the offset is on a character boundary.
        Err(e) => Err((
            e.position,
            text[e.position..]
                .chars()
                .next()
                .unwrap_or_else(|| char::from(e.found)),
        )),
    }
}

/// Decodes as Nix's `base64::decode` does.
pub(crate) fn decode_lenient(text: &[u8]) -> Result<Vec<u8>, InvalidByte> {
    let mut out = Vec::with_capacity(text.len().div_ceil(4) * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (position, &c) in text.iter().enumerate() {
        match c {
            b'=' => break,
            b'\n' => continue,
            _ => {}
        }
        let v = value(c).ok_or(InvalidByte { position, found: c })?;
        acc = (acc << 6 | v) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode(plain.as_bytes()), encoded, "encoding {plain:?}");
            assert_eq!(check(encoded), Ok(()));
        }
    }

    #[test]
    fn checking_follows_nix() {
        assert_eq!(check("SSH+HOST+PUBLIC+KEY+BASE64+ENCODED=="), Ok(()));
        assert_eq!(check("BAD_BASE64"), Err((3, '_')));
        // Nix stops reading at the first padding character.
        assert_eq!(check("QQ==!!"), Ok(()));
        // Nix skips newlines but nothing else.
        assert_eq!(check("QU\nFB"), Ok(()));
        assert_eq!(check("QU FB"), Err((2, ' ')));
        assert_eq!(check("é"), Err((0, 'é')));
    }
}
