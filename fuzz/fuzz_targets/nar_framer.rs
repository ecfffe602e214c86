//! `nixwire_core::nar::NarFramer` fed arbitrary bytes, split into reads at
//! fuzzer-chosen points. Checks that it never panics (hostile archives are
//! errors) and keeps its documented contract: `feed` never claims more than
//! it was given, takes all of a read while the archive goes on, returns 0
//! once done, and `position` is the sum of what it took.
//!
//! Input: `[split seed][bytes...]` (see `nixwire_fuzz::chunks`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixwire_core::nar::NarFramer;

fuzz_target!(|data: &[u8]| {
    let [split, rest @ ..] = data else {
        return;
    };
    let mut framer = NarFramer::new();
    let mut taken = 0u64;
    for chunk in nixwire_fuzz::chunks(*split, rest) {
        let was_done = framer.is_done();
        match framer.feed(&chunk) {
            Ok(used) => {
                assert!(used <= chunk.len());
                if was_done {
                    assert_eq!(used, 0, "took bytes after the archive ended");
                } else if used < chunk.len() {
                    assert!(framer.is_done(), "stopped early without ending");
                }
                taken += used as u64;
                assert_eq!(framer.position(), taken);
            }
            Err(_) => return,
        }
    }
});
