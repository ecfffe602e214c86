#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60), one after another,
# and prints how many inputs each executed (libFuzzer's final
# stat::number_of_executed_units). Exits non-zero if any target crashed,
# leaked past the limits or hung; the input that did it is kept in
# fuzz/artifacts/<target>/ (rerun it with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (docs/fuzzing.md). Seeds
# fuzz/corpus/ with seed.sh if it is missing. On a shared machine:
#   nice -n 19 env CARGO_BUILD_JOBS=1 fuzz/run.sh 60
#
# The memory limits follow the core's own (docs/core.md, "Limits"): a
# connection holds at most max_message (256 MiB) of input plus max_decoded
# (256 MiB) of decoded values, so -rss_limit_mb=512; and no single value
# may be larger than a whole message, so one allocation over 256 MiB
# (-malloc_limit_mb=256) means a length was trusted before it was checked.
# -timeout=20: decoding costs linear time in the bytes, so one small input
# taking 20 s is a bug too.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$(dirname "$here")"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"serve_client serve_server worker_client worker_server nar_framer aterm store_path_and_uri machines"}
[ -d "$here/corpus" ] || "$here/seed.sh"
mkdir -p "$here/logs"

cargo +nightly fuzz build || exit 2
failed=""
for t in $targets; do
    mkdir -p "$here/corpus/$t"
    log="$here/logs/$t.log"
    cargo +nightly fuzz run "$t" "$here/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=256 \
        -timeout=20 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "$t: ${execs:-?} executions in ${seconds} s, no crash"
    else
        failed="$failed $t"
        echo "$t: FAILED (exit $rc) after ${execs:-?} executions; log: $log"
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 8
    fi
done
if [ -n "$failed" ]; then
    echo "crashed:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
