//! `nixwire_core::store::Derivation::parse` (the ATerm `.drv` reader,
//! `store::aterm`) on arbitrary bytes, in the default store directory.
//! Checks that no input makes it panic (bad text is a `DerivationError`),
//! and that what it accepts can be written back with `to_aterm`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixwire_core::store::{Derivation, StoreDir};

fuzz_target!(|data: &[u8]| {
    let dir = StoreDir::default();
    if let Ok(drv) = Derivation::parse(&dir, data) {
        let _ = drv.to_aterm(&dir);
    }
});
