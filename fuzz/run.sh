#!/bin/sh
# Runs every fuzz target, one after another, and prints how many inputs each
# executed (libFuzzer's final stat::number_of_executed_units). Exits
# non-zero if any target crashed, went past the limits or hung; the input
# that did it is kept in fuzz/artifacts/<target>/ (rerun it with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`).
#
#   fuzz/run.sh [--fast] [--runs N] [SECONDS] [TARGET...]
#
#   SECONDS    how long each target runs (default 60)
#   --runs N   stop each target after N executions instead (SECONDS is
#              then a cap only if given)
#   --fast     fuzz without AddressSanitizer (`cargo fuzz -s none`, in
#              fuzz/target-fast): about six times the executions on this
#              code, which is safe Rust. libFuzzer sees allocations only
#              through a sanitizer, so -malloc_limit_mb holds in the second
#              pass only: every input of the grown corpus is run once more
#              under the AddressSanitizer build with all the limits.
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

fast=""
runs=""
while [ $# -gt 0 ]; do
    case $1 in
    --fast) fast=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    *) break ;;
    esac
done
seconds=""
case ${1:-} in
[0-9]*) seconds=$1; shift ;;
esac
[ -z "$seconds" ] && [ -z "$runs" ] && seconds=60
targets=${*:-"serve_client serve_server worker_client worker_server nar_framer nar_writer aterm store_path_and_uri machines"}
[ -d "$here/corpus" ] || "$here/seed.sh"
mkdir -p "$here/logs"

limits="-rss_limit_mb=512 -malloc_limit_mb=256 -timeout=20"
budget=""
[ -n "$seconds" ] && budget="-max_total_time=$seconds"
[ -n "$runs" ] && budget="$budget -runs=$runs"
describe="${runs:+$runs executions}${runs:+${seconds:+ or }}${seconds:+$seconds s}"

cargo +nightly fuzz build || exit 2
if [ -n "$fast" ]; then
    cargo +nightly fuzz build -s none --target-dir "$here/target-fast" || exit 2
fi

# run TARGET LOG [cargo-fuzz flags] -- [libFuzzer flags]: one run, its
# executions in $execs, its status in $rc.
run() {
    t=$1 log=$2
    shift 2
    cargo +nightly fuzz run "$@" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
}

report_failure() {
    failed="$failed $1"
    echo "$1: FAILED ($2, exit $rc) after ${execs:-?} executions; log: $3"
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$3" | head -n 8
}

failed=""
for t in $targets; do
    mkdir -p "$here/corpus/$t"
    log="$here/logs/$t.log"
    # nar_writer's input is a tree program: a longer one makes a larger
    # archive, which costs time linear in its bytes, rather than new shapes
    # (the tree's shapes fit in a few hundred bytes).
    extra=""
    [ "$t" = nar_writer ] && extra="-max_len=256"
    start=$(date +%s)
    if [ -n "$fast" ]; then
        # shellcheck disable=SC2086
        run "$t" "$log" -s none --target-dir "$here/target-fast" "$t" "$here/corpus/$t" -- \
            $budget $limits $extra -print_final_stats=1
    else
        # shellcheck disable=SC2086
        run "$t" "$log" "$t" "$here/corpus/$t" -- $budget $limits $extra -print_final_stats=1
    fi
    took=$(( $(date +%s) - start ))
    if [ "$rc" -ne 0 ]; then
        report_failure "$t" "fuzzing" "$log"
        continue
    fi
    slowest=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -n 1)
    line="$t: ${execs:-?} executions in ${took} s (budget: $describe), slowest input ${slowest:-?} s, no crash"
    if [ -n "$fast" ]; then
        # The allocation limit, over every input the run kept.
        check="$here/logs/$t.asan.log"
        fuzzed=$execs
        # shellcheck disable=SC2086
        run "$t" "$check" "$t" "$here/corpus/$t" -- -runs=0 $limits -print_final_stats=1
        if [ "$rc" -ne 0 ]; then
            execs=$fuzzed
            report_failure "$t" "corpus under AddressSanitizer" "$check"
            continue
        fi
        kept=$(ls "$here/corpus/$t" | wc -l)
        line="$line; its $kept corpus inputs pass under AddressSanitizer with the allocation limit"
    fi
    echo "$line"
done
if [ -n "$failed" ]; then
    echo "crashed:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
