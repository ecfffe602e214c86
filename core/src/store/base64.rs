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
