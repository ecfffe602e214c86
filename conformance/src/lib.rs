//! Replays sessions captured between real Nix versions against nixwire's core.
//!
//! A transcript (format: `captures/README.md`) holds every byte a real client
//! and a real server exchanged. For each serve transcript, [`serve::check`]:
//! 1. walks both streams with the codec alone and re-encodes every message at
//!    the negotiated version, which must give the recorded bytes;
//! 2. drives the core's [`Client`](nixwire_core::serve::Client), announcing the
//!    recorded client's version and asked for the requests found in step 1,
//!    against the recorded server bytes and stderr: it must send exactly the
//!    recorded client bytes, consume exactly the server's, and surface the
//!    stderr as logs;
//! 3. feeds the recorded client bytes to the core's
//!    [`Server`](nixwire_core::serve::Server), which must yield the same
//!    requests, and has it answer with the recorded replies, which must
//!    encode to the recorded server bytes.
//!
//! A transcript whose client failed is checked for that failure: the core
//! must report the same failed build, or fail on the same bytes.

pub mod serve;
pub mod transcript;

use std::path::Path;

/// The verdict on one transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed; the text says what was checked.
    Ok(String),
    /// A check failed; the text says which and how.
    Fail(String),
    /// The transcript's protocol is not implemented yet.
    Skip(String),
}

/// Checks one transcript file.
pub fn check_file(path: &Path) -> (String, Verdict) {
    match transcript::load(path) {
        Err(e) => (path.display().to_string(), Verdict::Fail(e.to_string())),
        Ok(t) => {
            let verdict = match t.protocol.as_str() {
                "serve" => match serve::check(&t) {
                    Ok(s) => Verdict::Ok(s),
                    Err(e) => Verdict::Fail(e),
                },
                other => Verdict::Skip(format!("the {other} protocol is not implemented yet")),
            };
            (t.name, verdict)
        }
    }
}
