//! `nixwire_core::machines::parse` on arbitrary text (Nix's line format
//! and Lix's TOML, detected), with the default options and
//! `NoFiles` (every `@include` finds nothing). Checks that no text makes
//! it panic: bad machines files are `MachinesError`s or warnings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixwire_core::machines::{NoFiles, ParseOptions, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse("machines", text, &ParseOptions::default(), &NoFiles);
});
