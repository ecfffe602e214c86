#!/usr/bin/env bash
# A private loopback sshd for the tests that go through ssh (nixwire's ssh
# runtimes, and real Nix clients talking to a remote program through ssh).
#
# usage: .ci/sshd.sh start DIR [PORT]   (PORT defaults to 2202)
#        .ci/sshd.sh stop DIR
#
# `start` keeps everything in DIR (mode 700): the host key, a client key
# DIR/client_ed25519 without passphrase, authorized_keys (that key, no forced
# command), sshd_config, pid, log, known_hosts and env. The sshd listens on
# 127.0.0.1:PORT only and lets in by key only. Then it logs in once to check
# the key, the host key and the Nix settings, and writes DIR/env:
#
#   NIXWIRE_SSH_HOST=127.0.0.1
#   NIXWIRE_SSH_PORT=PORT
#   NIXWIRE_SSH_USER=the user running this script (and so the sshd)
#   NIXWIRE_SSH_KEY=DIR/client_ed25519
#   NIXWIRE_SSH_HOST_KEY=base64 of the host key line, as column 8 of a Nix
#                        machines file holds it
#   NIXWIRE_SSH_KNOWN_HOSTS=DIR/known_hosts
#
# for `set -a; . DIR/env; set +a`. Starting again while that sshd runs only
# checks it again; `stop` kills that sshd and no other. Run as root (CI), it
# lets root in; run as any other user, it can only let that user in (an sshd
# that is not root cannot change user), which is what NIXWIRE_SSH_USER says.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [PORT] | stop DIR" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
D=$2
PORT=${3:-2202}
# An absolute path: sshd re-executes itself and refuses a relative one.
SSHD=${SSHD:-/usr/sbin/sshd}
HERE=$(cd "$(dirname "$0")" && pwd)

# Whether DIR/pid names a live sshd started with DIR's config: a stale pid
# file may name an unrelated process by now, which must not be touched.
ours() {
  [ -s "$D/pid" ] || return 1
  local pid
  pid=$(cat "$D/pid")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-f $D/sshd_config"
}

case $cmd in
stop)
  [ $# -eq 2 ] || usage
  [ -d "$D" ] || exit 0
  D=$(cd "$D" && pwd)
  if ours; then
    pid=$(cat "$D/pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "sshd $pid stopped"
  fi
  rm -f "$D/pid"
  exit 0
  ;;
start) [ $# -le 3 ] || usage ;;
*) usage ;;
esac

case $PORT in
'' | *[!0-9]*) echo "$0: PORT must be a number, not '$PORT'" >&2; exit 2 ;;
esac
# DIR ends up in sshd_config and in the env file, which is sourced: keep it
# to characters neither has to quote (checked before and after it is made
# absolute).
plain() {
  case $1 in
  *[!A-Za-z0-9/._+-]*) echo "$0: DIR must be a plain path, not '$1'" >&2; exit 2 ;;
  esac
}
plain "$D"
mkdir -p "$D"
chmod 700 "$D"
D=$(cd "$D" && pwd)
plain "$D"
USER_NAME=$(id -un)
NIX_DIR="$HERE/nix"

# A running sshd of DIR on another port is an error, found before anything
# in DIR is rewritten for the new port.
if ours; then
  running_port=$(sed -n 's/^ListenAddress 127\.0\.0\.1://p' "$D/sshd_config")
  if [ "$running_port" != "$PORT" ]; then
    echo "$0: the sshd of $D already runs on port $running_port, not $PORT" >&2
    exit 1
  fi
fi

# Keys are made once: a second start keeps them, so a known_hosts or env
# file written before stays right.
[ -f "$D/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nixwire-ci-host -f "$D/host_ed25519"
[ -f "$D/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nixwire-ci-client -f "$D/client_ed25519"
cp "$D/client_ed25519.pub" "$D/authorized_keys"
chmod 600 "$D/authorized_keys"

# ssh looks a host up as [host]:port when the port is not 22.
if [ "$PORT" = 22 ]; then known=127.0.0.1; else known="[127.0.0.1]:$PORT"; fi
host_key=$(cat "$D/host_ed25519.pub")
echo "$known $host_key" >"$D/known_hosts"

if ours; then
  echo "sshd $(cat "$D/pid") already running on 127.0.0.1:$PORT"
else
  # SetEnv: commands run through this sshd (a Nix server started by a client
  # under test) get the repository's Nix settings, as .ci/run gives every
  # other Nix command, instead of /etc/nix, which may be absent or say
  # anything; they override whatever the client sends. An empty
  # NIX_USER_CONF_FILES means no user configuration files.
  # StrictModes no: DIR may lie under a directory sshd would find too open.
  # UsePAM no: PAM needs root, and the key is all that is checked here.
  # MaxSessions, MaxStartups: tests open many connections at once.
  cat >"$D/sshd_config" <<EOF
ListenAddress 127.0.0.1:$PORT
AddressFamily inet
HostKey $D/host_ed25519
PidFile $D/pid
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxSessions 100
MaxStartups 100:30:200
LogLevel INFO
SetEnv "NIX_CONF_DIR=$NIX_DIR" "NIX_USER_CONF_FILES="
EOF
  # The privilege separation directory only an sshd run as root needs.
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi
  rm -f "$D/pid"
  "$SSHD" -t -f "$D/sshd_config"
  "$SSHD" -f "$D/sshd_config" -E "$D/log" # daemonizes once listening, then writes the pid
  for _ in $(seq 100); do [ -s "$D/pid" ] && break; sleep 0.1; done
  if ! [ -s "$D/pid" ]; then
    echo "$0: sshd did not start; the end of $D/log:" >&2
    tail -n 20 "$D/log" >&2 || true
    exit 1
  fi
  echo "sshd $(cat "$D/pid") listening on 127.0.0.1:$PORT"
fi

# The check: the client key logs in, the host key is the one in known_hosts
# (StrictHostKeyChecking=yes), and SetEnv reaches the command. -F /dev/null:
# no ssh configuration of the machine or the user gets in the way.
check=$(ssh -F /dev/null -p "$PORT" -i "$D/client_ed25519" -oIdentitiesOnly=yes \
  -oBatchMode=yes -oStrictHostKeyChecking=yes -oUserKnownHostsFile="$D/known_hosts" \
  -oConnectTimeout=10 -oLogLevel=ERROR "$USER_NAME@127.0.0.1" \
  'true && printf "%s|%s\n" "$NIX_CONF_DIR" "${NIX_USER_CONF_FILES-unset}"') || {
  echo "$0: logging in to the sshd of $D failed; the end of $D/log:" >&2
  tail -n 20 "$D/log" >&2 || true
  exit 1
}
if [ "$check" != "$NIX_DIR|" ]; then
  echo "$0: the sshd of $D does not pass on the Nix settings:" \
    "NIX_CONF_DIR|NIX_USER_CONF_FILES is '$check', expected '$NIX_DIR|'" >&2
  exit 1
fi
echo "login ok as $USER_NAME; NIX_CONF_DIR=$NIX_DIR in sessions"

# The machines file's column 8 is the base64 of the host key line as ssh
# writes it (without the newline).
host_key_b64=$(printf '%s' "$host_key" | base64 -w0)
cat >"$D/env.tmp" <<EOF
NIXWIRE_SSH_HOST=127.0.0.1
NIXWIRE_SSH_PORT=$PORT
NIXWIRE_SSH_USER=$USER_NAME
NIXWIRE_SSH_KEY=$D/client_ed25519
NIXWIRE_SSH_HOST_KEY=$host_key_b64
NIXWIRE_SSH_KNOWN_HOSTS=$D/known_hosts
EOF
mv "$D/env.tmp" "$D/env"
echo "wrote $D/env"
