//! Replays sessions captured between real Nix versions against nixwire's core.
//!
//! A transcript (format: `captures/README.md`) holds every byte a real client
//! and a real server exchanged. For each transcript, of the serve protocol
//! ([`serve::check`]) or the worker protocol ([`worker::check`]):
//! 1. **codec**: both streams are walked with the codec alone and every
//!    message re-encoded at the negotiated version (and, in the worker
//!    protocol, the agreed features) must give the recorded bytes;
//! 2. **client role**: the core's client, announcing what the recorded client
//!    announced and asked for the requests found in step 1 (offered the same
//!    bodies, in the same pieces), is fed the recorded server bytes and
//!    stderr chunk by chunk: it must send exactly the recorded client bytes,
//!    consume exactly the server's, and surface what the server said (serve:
//!    its stderr as logs; worker: the STDERR stream's logs and activities,
//!    and the replies and refusals the codec decoded);
//! 3. **server role**: the core's server, announcing what the recorded
//!    server announced, is fed the recorded client bytes: it must yield the
//!    same requests and bodies, and its encoding of the recorded answers
//!    (replayed by a host: logs, activities, replies, NARs, refusals) must
//!    equal the recorded server bytes.
//!
//! A transcript whose client failed is checked for that failure, read from
//! the recorded client's own account (its stderr): the core must report the
//! same failed build, the same refusal, or fail on the same bytes.

mod cursor;
pub mod link;
mod runtimes;
pub mod serve;
pub mod transcript;
pub mod worker;

use std::path::Path;

/// The verdict on one transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed; the text says what was checked.
    Ok(String),
    /// A check failed; the text says which and how.
    Fail(String),
    /// The transcript's protocol is not one the suite knows.
    Skip(String),
}

/// Checks one transcript file, the client's bytes travelling as `link`
/// says.
pub fn check_file(path: &Path, link: &link::Link) -> (String, Verdict) {
    match transcript::load(path) {
        Err(e) => (path.display().to_string(), Verdict::Fail(e.to_string())),
        Ok(t) => {
            let verdict = match t.protocol.as_str() {
                "serve" => match serve::check_via(&t, path, link) {
                    Ok(s) => Verdict::Ok(s),
                    Err(e) => Verdict::Fail(e),
                },
                "worker" => match worker::check_via(&t, path, link) {
                    Ok(s) => Verdict::Ok(s),
                    Err(e) => Verdict::Fail(e),
                },
                other => Verdict::Skip(format!("the {other} protocol is not implemented yet")),
            };
            (t.name, verdict)
        }
    }
}
