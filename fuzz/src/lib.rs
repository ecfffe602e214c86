//! What the fuzz targets share: how an input is cut into the reads a
//! driver would hand to a connection.

use bytes::Bytes;

/// Cuts `data` into the slices of one `Bytes` that a driver would pass to
/// `handle_input`, at points chosen by the fuzzer through `seed`: 0 passes
/// everything at once, 1 one byte at a time, any other value a sequence of
/// sizes between 1 and `seed` (a xorshift generator seeded by `seed`).
pub fn chunks(seed: u8, data: &[u8]) -> Vec<Bytes> {
    let all = Bytes::copy_from_slice(data);
    if seed == 0 {
        return if all.is_empty() {
            Vec::new()
        } else {
            vec![all]
        };
    }
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut out = Vec::new();
    let mut at = 0;
    while at < all.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + (state % u32::from(seed)) as usize;
        let end = (at + size).min(all.len());
        out.push(all.slice(at..end));
        at = end;
    }
    out
}

/// A valid store path for requests, as in the core's examples.
pub const HELLO: &str = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12";
