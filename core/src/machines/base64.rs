//! The two base64 operations machines files need, written to match Nix's
//! own decoder rather than a strict RFC 4648 one: Nix stops at the first
//! `=`, skips newlines and rejects any other character outside the
//! standard alphabet. A strict decoder would reject host keys that Nix
//! accepts (for example trailing text after the padding).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Checks `s` the way Nix's `base64::decode` would; on failure returns the
/// byte offset and the first character it would reject.
pub(crate) fn validate(s: &str) -> Result<(), (usize, char)> {
    for (i, c) in s.char_indices() {
        if c == '=' {
            break;
        }
        if c == '\n' {
            continue;
        }
        if !(c.is_ascii() && ALPHABET.contains(&(c as u8))) {
            return Err((i, c));
        }
    }
    Ok(())
}

/// Standard base64 with `=` padding, for Lix's TOML format, which takes the
/// host key in clear and encodes it.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        // A chunk of k bytes yields k+1 significant sextets; the rest is padding.
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
            assert_eq!(validate(encoded), Ok(()));
        }
    }

    #[test]
    fn validation_follows_nix() {
        assert_eq!(validate("SSH+HOST+PUBLIC+KEY+BASE64+ENCODED=="), Ok(()));
        assert_eq!(validate("BAD_BASE64"), Err((3, '_')));
        // Nix stops reading at the first padding character.
        assert_eq!(validate("QQ==!!"), Ok(()));
        // Nix skips newlines but nothing else.
        assert_eq!(validate("QU\nFB"), Ok(()));
        assert_eq!(validate("QU FB"), Err((2, ' ')));
        assert_eq!(validate("é"), Err((0, 'é')));
    }
}
