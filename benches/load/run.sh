#!/usr/bin/env bash
# The load run of `nixwire build`: many concurrent builds through one
# machines pool, one builder killed mid-way. Not part of CI (its small
# version is bins/nixwire/tests/load_cli.rs).
#
# usage: benches/load/run.sh [BUILDS] [FAILING]    (defaults: 50 5)
#
# Needs Nix (nix-instantiate, nix-store), /usr/bin/time, and the loopback
# sshd of .ci/sshd.sh with its variables exported:
#   .ci/sshd.sh start /tmp/nw-sshd 2214; set -a; . /tmp/nw-sshd/env; set +a
# NIXWIRE names the binary (default: target/release/nixwire, built with
# `cargo build --release -p nixwire`).
#
# What it does, in a scratch directory it removes afterwards (KEEP=1 keeps
# it):
# - four chroot stores builder-1..4, each a machine of a machines file
#   `ssh://USER@127.0.0.1:PORT?remote-store=…&remote-program=…` with the
#   sshd's key and pinned host key, 2 jobs each; the remote program is a
#   wrapper around nix-store that refuses to start once the builder's
#   "dead" flag file exists;
# - BUILDS derivations (/bin/sh, each sleeping 0.2-1.0 s): a tenth of them
#   depend on two others, FAILING of the independent ones exit 1, and one
#   dependent depends on a failing one;
# - `nixwire -v build -k` of all of them under `/usr/bin/time -v`, its
#   stderr time-stamped line by line;
# - once a quarter of the builds have started and builder 4 is building,
#   the flag is created and builder 4's `nix-store --serve` processes are
#   killed (SIGKILL);
# - then every outcome is checked (exit 100; each successful output valid
#   locally by `nix-store --verify-path`; each failing derivation named in
#   an error and "not built"; the dependent of a failing one not built
#   because of it; nothing built on builder 4 after the kill; every build
#   killed there retried elsewhere) and the figures printed.
# The run is limited to LIMIT seconds (default 600); then nixwire is
# killed and the run fails.
set -euo pipefail

N=${1:-50}
FAIL=${2:-5}
LIMIT=${LIMIT:-600}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NIXWIRE=${NIXWIRE:-$REPO/target/release/nixwire}
export NIX_CONF_DIR=${NIX_CONF_DIR:-$REPO/.ci/nix} NIX_USER_CONF_FILES=
unset NIX_REMOTE_SYSTEMS NIX_REMOTE NIX_SSHOPTS

die() {
  echo "load: $*" >&2
  exit 1
}
[ -x "$NIXWIRE" ] || die "no $NIXWIRE (cargo build --release -p nixwire, or set NIXWIRE)"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed for the peak RSS"
command -v nix-instantiate >/dev/null || die "Nix is needed"
for var in NIXWIRE_SSH_HOST NIXWIRE_SSH_PORT NIXWIRE_SSH_USER NIXWIRE_SSH_KEY NIXWIRE_SSH_HOST_KEY; do
  [ -n "${!var:-}" ] || die "no $var: start the loopback sshd and export its env (.ci/sshd.sh)"
done
[ "$N" -ge 20 ] || die "at least 20 builds"
if [ "$FAIL" -lt 1 ] || [ "$FAIL" -gt $((N / 4)) ]; then die "1 to $((N / 4)) failing builds"; fi

S=$(mktemp -d /tmp/nw-load.XXXXXX)
RUNNER=
cleanup() {
  # nixwire itself stops within LIMIT s (timeout); wait for it.
  if [ -n "$RUNNER" ]; then wait "$RUNNER" 2>/dev/null || true; fi
  [ -n "${KEEP:-}" ] && { echo "load: kept $S" >&2; return; }
  chmod -R u+w "$S" 2>/dev/null || true
  rm -rf "$S"
}
trap cleanup EXIT

# The machines: builder-i behind the sshd, its remote program a wrapper
# that refuses to start once dead-i exists.
: >"$S/machines"
for i in 1 2 3 4; do
  cat >"$S/serve-$i" <<EOF
#!/bin/sh
if [ -e "$S/dead-$i" ]; then echo "builder $i is down" >&2; exit 1; fi
exec nix-store "\$@"
EOF
  chmod +x "$S/serve-$i"
  uri="ssh://$NIXWIRE_SSH_USER@$NIXWIRE_SSH_HOST:$NIXWIRE_SSH_PORT?remote-store=$S/builder-$i&remote-program=$S/serve-$i"
  echo "$uri x86_64-linux $NIXWIRE_SSH_KEY 2 1 - - $NIXWIRE_SSH_HOST_KEY" >>"$S/machines"
done

# The derivations. Names: lN independent, fN failing (FAILING of them,
# spread over the run), dK dependent on two independent ones (the last dK
# on a failing one instead).
RUN=$(date +%s%N)
deps=$((N / 10))
leaves=$((N - deps))
failing=" "
for k in $(seq 1 "$FAIL"); do failing="$failing$((k * leaves / (FAIL + 1))) "; done
lnames=()
fnames=()
{
  echo "let mk = name: sleep: code: inputs: derivation {"
  echo "  name = \"load-\${name}\"; system = builtins.currentSystem; builder = \"/bin/sh\";"
  echo "  run = \"$RUN\";"
  echo "  args = [ \"-c\" \"echo start-\${name}; /bin/sleep \${sleep}; echo \${name} \${toString inputs} > \$out; exit \${code}\" ];"
  echo "}; in rec {"
  for i in $(seq 1 "$leaves"); do
    # 0.2, 0.4, 0.6, 0.8, 1.0 s
    sl=$(((i % 5) * 2 + 2))
    sl=$([ "$sl" -eq 10 ] && echo 1.0 || echo "0.$sl")
    case $failing in
    *" $i "*) echo "  f$i = mk \"f$i\" \"$sl\" \"1\" [];"; fnames+=("f$i") ;;
    *) echo "  l$i = mk \"l$i\" \"$sl\" \"0\" [];"; lnames+=("l$i") ;;
    esac
  done
  set -- "${lnames[@]}"
  failing_one=${fnames[-1]}
  for k in $(seq 1 "$deps"); do
    a=$1 b=$2
    shift 2
    [ "$k" -eq "$deps" ] && b=$failing_one
    echo "  d$k = mk \"d$k\" \"0.4\" \"0\" [ $a $b ];"
  done
  echo "}"
} >"$S/expr.nix"
failing_one=${fnames[-1]}
# One instantiation; each .drv's name says which it is.
nix-instantiate --store "$S/local" "$S/expr.nix" 2>/dev/null |
  sed -n 's|^\(/nix/store/[a-z0-9]*-load-\([a-z0-9]*\)\.drv\)$|\2 \1|p' >"$S/drvs"
[ "$(wc -l <"$S/drvs")" -eq "$N" ] || die "instantiated $(wc -l <"$S/drvs") of $N"
nfail=${#fnames[@]}
echo "load: $N builds ($nfail failing, $deps dependent, one on $failing_one) over 4 builders x 2 slots" >&2

stamp() {
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}
# Builds on builder 4 are killed once a quarter have started.
KILL_AFTER=$((N / 4))
started=$EPOCHREALTIME
# `timeout` interrupts nixwire after LIMIT s (it then exits 130), and kills
# it 10 s later.
mapfile -t drvlist < <(cut -d' ' -f2 "$S/drvs")
{
  /usr/bin/time -v -o "$S/time.txt" timeout -s INT -k 10 "$LIMIT" \
    "$NIXWIRE" -v build -k --machines "$S/machines" \
    --local-store "$S/local" "${drvlist[@]}" 2>&1 >"$S/stdout" &&
    echo 0 >"$S/rc" || echo $? >"$S/rc"
} | stamp >"$S/log" &
RUNNER=$!

# Builder 4's servers, by their command line (read without a process per
# entry: the scan runs every 50 ms).
builder4() {
  local p args
  for p in /proc/[0-9]*; do
    mapfile -d '' args 2>/dev/null <"$p/cmdline" || continue
    [[ "${args[*]}" == "nix-store --serve"*"--store $S/builder-4" ]] && echo "${p#/proc/}"
  done
  return 0
}
killed_at=
while kill -0 "$RUNNER" 2>/dev/null; do
  if [ -z "$killed_at" ] && [ "$(grep -c "^[0-9.]* building '" "$S/log")" -ge "$KILL_AFTER" ] &&
    grep -q "^[0-9.]* building '.*' on '.*builder-4&" "$S/log"; then
    mapfile -t pids < <(builder4)
    if [ "${#pids[@]}" -gt 0 ]; then
      touch "$S/dead-4"
      killed_at=$EPOCHREALTIME
      kill -9 "${pids[@]}" 2>/dev/null || true
      echo "load: killed builder 4 (pids ${pids[*]}) after $(grep -c "^[0-9.]* building '" "$S/log") starts" >&2
    fi
  fi
  sleep 0.05
done
wait "$RUNNER" || true
RUNNER=
rc=$(cat "$S/rc")
case $rc in 124 | 130 | 137) die "the run took over $LIMIT s: $(tail -5 "$S/log")" ;; esac
[ -n "$killed_at" ] || die "builder 4 was never killed"

# Every outcome.
problems=0
bad() {
  echo "load: FAIL: $*" >&2
  problems=$((problems + 1))
}
[ "$rc" -eq 100 ] || bad "exit code $rc, not 100"
ok=0
failed=0
while read -r name drv; do
  out=$(nix-store --store "$S/local" -q --outputs "$drv")
  case $name in
  l* | d[0-9]*)
    if [ "$name" = "d$deps" ]; then
      grep -q "$drv was not built: its dependency .*$failing_one.drv was not built" "$S/log" ||
        bad "$name: not failed for its failing dependency"
      failed=$((failed + 1))
    elif nix-store --store "$S/local" --verify-path "$out" 2>/dev/null && grep -qx "$out" "$S/stdout"; then
      ok=$((ok + 1))
    else
      bad "$name ($drv): not built"
    fi
    ;;
  f*)
    grep -q "error: building '$drv' on .*: .*builder failed\|error: building '$drv' on .*exit" "$S/log" ||
      grep -q "error: building '$drv'" "$S/log" || bad "$name: no error line"
    grep -q "$drv was not built" "$S/log" || bad "$name: not said to be not built"
    nix-store --store "$S/local" --check-validity "$out" 2>/dev/null && bad "$name: output valid"
    failed=$((failed + 1))
    ;;
  esac
done <"$S/drvs"

# The figures, from the time-stamped log.
figures=$(awk -v killed="$killed_at" -v t0="$started" '
  / building .* on .*\.\.\.$/ {
    match($0, /building .[^ ]*drv. on .[^ ]*'"'"'/); s = substr($0, RSTART, RLENGTH)
    split(s, w, "'"'"'"); drv = w[2]; m = w[4]; sub(/.*builder-/, "", m); sub(/[^0-9].*/, "", m)
    starts++; per[m]++
    if (drv in seen) { retries++; if ($1 > killed && first_retry == "") first_retry = $1 }
    seen[drv] = m
    if ($1 > killed && m == "4") { after4++; if (first_probe == "") first_probe = $1 }
    if ($1 > killed) last_start = $1
    next
  }
  /error: building .* on .*builder-4&/ && $1 > killed { mfail4++; if (first_mfail == "") first_mfail = $1 }
  /finished: built/ && /builder-4&/ && $1 > killed { built4++ }
  /backed off for/ { backoffs++; if (first_backoff == "") first_backoff = $0 }
  END {
    printf "starts %d\nretries %d\n", starts, retries
    for (m = 1; m <= 4; m++) printf "builder-%d %d\n", m, per[m]
    printf "after_kill_on_4 %d\n", after4
    printf "machine_failures_on_4 %d\n", mfail4
    printf "built_on_4_after_kill %d\n", built4
    printf "failure_to_probe %s\n", (first_probe == "" ? "none" : sprintf("%.3f", first_probe - first_mfail))
    printf "kill_to_machine_failure %.3f\n", first_mfail - killed
    printf "kill_to_retry %.3f\n", first_retry - killed
    printf "backoffs %d\n", backoffs
    printf "first_backoff %s\n", first_backoff
  }' "$S/log")
get() { echo "$figures" | sed -n "s/^$1 //p"; }
[ "$(get built_on_4_after_kill)" -eq 0 ] || bad "$(get built_on_4_after_kill) builds built on builder 4 after the kill"
# Backed off: the first try on builder 4 after its first failure comes
# after the 1 s backoff, not at once.
probe=$(get failure_to_probe)
[ "$probe" = none ] || awk -v p="$probe" 'BEGIN { exit !(p >= 0.9) }' ||
  bad "builder 4 tried again $probe s after its failure"
[ "$(get retries)" -ge 1 ] || bad "no build was retried"

# Slot use after the kill: the builds running on builders 1-3 over time,
# from each start to its "finished" (-v) line, between the first retry
# and the last start (when builds still wait for a slot).
slots=$(awk -v from="$(echo "$figures" | awk -v k="$killed_at" '/^kill_to_retry/ {printf "%.6f", k + $2}')" '
  / building .* on .*\.\.\.$/ { if ($0 ~ /builder-4/) next; events[++n] = $1 " 1"; last = $1; next }
  /finished: / && !/builder-4/ { events[++n] = $1 " -1" }
  END {
    # Events are in time order already (one log).
    run = 0; area = 0; prev = 0; peak = 0
    for (i = 1; i <= n; i++) {
      split(events[i], e, " ")
      if (prev > 0 && e[1] > from && prev < last) {
        lo = (prev > from) ? prev : from; hi = (e[1] < last) ? e[1] : last
        if (hi > lo) area += run * (hi - lo)
      }
      run += e[2]; prev = e[1]
      if (e[1] >= from && e[1] <= last && run > peak) peak = run
    }
    span = last - from
    printf "%.2f %d %.2f\n", (span > 0 ? area / span : 0), peak, span
  }' "$S/log")
read -r mean peak span <<<"$slots"
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$S/time.txt")
elapsed=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$S/time.txt")

cat <<EOF
load run: $N builds, $nfail failing (+1 dependent), 4 builders x 2 slots, builder 4 killed
  exit code            $rc
  builds ok            $ok
  builds failed        $failed  (as expected: $((nfail + 1)))
  build starts         $(get starts)  (retries: $(get retries))
  per builder          1: $(get builder-1)  2: $(get builder-2)  3: $(get builder-3)  4: $(get builder-4)  (starts, retries included)
  on builder 4 after the kill       $(get machine_failures_on_4) machine failures; $(get after_kill_on_4) starts (tries after its backoff), none built; first try again $(get failure_to_probe) s after the first failure
  kill -> machine failure reported  $(get kill_to_machine_failure) s
  kill -> first retry started       $(get kill_to_retry) s
  backoff lines        $(get backoffs); first: $(get first_backoff | cut -d' ' -f2-)
  slots used on 1-3 after the kill  mean $mean, peak $peak (of 6) over $span s (first retry to last start)
  wall time            $elapsed (nixwire, /usr/bin/time)
  peak RSS             $rss KiB (nixwire's VmHWM)
EOF
[ "$failed" -eq $((nfail + 1)) ] || bad "$failed failed, expected $((nfail + 1))"
[ "$ok" -eq $((N - nfail - 1)) ] || bad "$ok built, expected $((N - nfail - 1))"
if [ "$problems" -ne 0 ]; then
  KEEP=1
  die "$problems problem(s); log in $S/log"
fi
echo "load: all outcomes as expected" >&2
