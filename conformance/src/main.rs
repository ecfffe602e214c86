//! `nixwire-conformance PATH...`: checks every transcript under the paths and
//! prints one line each, then `N passed, M failed`. Exits 1 if any failed.

use std::path::PathBuf;
use std::process::ExitCode;

use nixwire_conformance::{Verdict, check_file, transcript};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!("usage: nixwire-conformance PATH...  (a transcript file or a folder of them)");
        return ExitCode::from(2);
    }
    let verbose = std::env::var_os("NIXWIRE_CONFORMANCE_VERBOSE").is_some();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for arg in &args {
        let files = match transcript::find(arg) {
            Ok(f) if f.is_empty() => {
                println!("FAIL {}: no transcripts (conn*.json) found", arg.display());
                failed += 1;
                continue;
            }
            Ok(f) => f,
            Err(e) => {
                println!("FAIL {}: {e}", arg.display());
                failed += 1;
                continue;
            }
        };
        for file in files {
            match check_file(&file) {
                (name, Verdict::Ok(detail)) => {
                    passed += 1;
                    if verbose {
                        // One line per transcript, whatever the messages hold.
                        let detail = detail.replace('\n', " ");
                        println!("ok {name} ({detail})");
                    } else {
                        println!("ok {name}");
                    }
                }
                (name, Verdict::Fail(why)) => {
                    failed += 1;
                    println!("FAIL {name}: {}", why.replace('\n', " "));
                }
                (name, Verdict::Skip(why)) => {
                    skipped += 1;
                    println!("skip {name}: {why}");
                }
            }
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} transcripts skipped (protocol not implemented)");
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
