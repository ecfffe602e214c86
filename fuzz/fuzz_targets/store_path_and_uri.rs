//! Store paths, store directories and store URIs from arbitrary text:
//! `StorePath` from bytes and from `&str`, `StoreDir::parse_path` (bytes,
//! in the default store), `StoreDir` and `OutputName` from `&str`, and
//! `nixwire_core::uri::StoreUri` from `&str`. Checks that none of them
//! panics, and the URI promise of docs/core.md: a parsed URI is written
//! back to text that parses to the same URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixwire_core::store::{OutputName, StoreDir, StorePath};
use nixwire_core::uri::StoreUri;

fuzz_target!(|data: &[u8]| {
    let _ = StorePath::try_from(data);
    let _ = StoreDir::default().parse_path(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = text.parse::<StorePath>() {
        let _ = path.to_string();
    }
    let _ = text.parse::<OutputName>();
    if let Ok(dir) = text.parse::<StoreDir>() {
        let _ = dir.parse_path(data);
    }
    if let Ok(uri) = text.parse::<StoreUri>() {
        let written = uri.to_string();
        let again: StoreUri = written
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} was written as {written:?}, which fails: {e}"));
        assert_eq!(uri, again, "{text:?} was written as {written:?}");
    }
});
