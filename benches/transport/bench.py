#!/usr/bin/env python3
"""Transport benchmark: nixwire against raw ssh and Nix through a loopback sshd.

What it measures (issue 10's "Benchmarks (not timed tests)"), all in one
run, each figure the median of N runs (``--runs``, default 5), every copy
into a fresh remote store (a chroot store, a plain directory, reached
through ssh as ``remote-store=DIR``):

1. ``big``: one 256 MiB path of random content, copied from a chroot store
   A by ``nixwire copy`` over ``ssh://`` and ``ssh-ng://`` (for each runtime
   of ``--runtimes``), beside ``ssh ... 'cat >/dev/null' < NAR`` of the same
   bytes (the path's NAR) and Nix 2.8's ``nix copy --no-check-sigs``.
   Ratio: nixwire / raw ssh (target <= 1.10).
2. ``many``: 1000 paths of 1 KiB, all given at once, beside
   ``ssh ... true`` (the connection floor) and ``nix copy``.
   Ratio: nixwire / floor (target <= 1.6).
3. Peak RSS of every command, and a 16 MiB path beside the 256 MiB one:
   nixwire's RSS should not grow with the path's size (target < 16 MiB).
   Two figures: the command's own peak (VmHWM polled from /proc), and
   ``/usr/bin/time -f '%e %M'``'s, which is the largest of the command and
   its children (for nixwire: ssh and a local ``nix-daemon --stdio``).
4. ``--slow``: the 1000-path copy and ``nixwire path-info`` of the 1000
   paths through ``delay-proxy.py`` (5 ms each way, a 10 ms round trip),
   beside ``nix copy`` and ``nix path-info``.
5. ``--chain``: 10 dependent trivial derivations built remotely by
   ``nixwire build --store ssh-ng://... --local-store A DRV`` beside
   ``nix-build --store A -j0 --builders '...' DRV`` (target <= 1.0 s for
   nixwire). Skipped, with a message, when the binary has no ``build``.

Every command uses the same ssh options nixwire passes (core/src/ssh.rs):
the client key, the host key pinned through a known_hosts file,
``-oBatchMode=yes``, no ControlMaster. Nix 2.8 reads no port in a store
URI, so Nix gets the port (and the rest) through ``NIX_SSHOPTS``; nixwire
gets the port in the URI and no ``NIX_SSHOPTS``.

It starts its own sshd with ``.ci/sshd.sh`` (port ``--port``, default 2210)
and stops it at the end, also on failure. Local Nix commands run with
``NIX_CONF_DIR=.ci/nix``, an empty ``NIX_USER_CONF_FILES`` and no
``NIX_REMOTE``. Everything else lives in a temporary directory, removed at
the end unless ``--keep``.

Run it from the repository, after ``cargo build --release -p nixwire``:

    benches/transport/bench.py                  # cases 1-3, 5 runs each
    benches/transport/bench.py --runs 3 --slow --chain
    benches/transport/bench.py --quick          # a smoke test, small sizes

It prints a markdown table of medians and ratios on stdout (progress on
stderr). Standard library only.
"""

import argparse
import base64
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The latency tool beside the repository (../shared/tools/latency).
DELAY_PROXY = os.path.join(os.path.dirname(REPO), "shared", "tools", "latency",
                           "delay-proxy.py")
MIB = 1024 * 1024

CHAIN_NIX = r"""
{ nonce, n ? 10 }:
let
  step = i: prev: derivation {
    name = "chain-${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo $prev > $out" ];
    inherit prev nonce;
  };
  go = i: prev: if i > n then prev else go (i + 1) (step i prev);
in go 1 nonce
"""


def log(msg):
    """Progress on stderr, so stdout holds only the table."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One timed run: wall seconds and peak RSS in KiB.

    `rss_kib` is /usr/bin/time's %M: the largest of the command and the
    children it waited for (nixwire's are ssh and, for a chroot store A, a
    local `nix-daemon --stdio`). `own_kib` is the command's own peak
    (VmHWM), polled from /proc while it runs.
    """

    seconds: float
    rss_kib: int
    own_kib: int = 0


@dataclass
class Row:
    """One line of the table: a case, a tool, and its samples."""

    case: str
    tool: str
    samples: list = field(default_factory=list)
    baseline: str = ""  # the tool of the same case this row is divided by
    note: str = ""
    failed: bool = False

    def attempt(self, fn):
        """Runs fn() -> Sample and keeps it; a failure is noted, not fatal.

        A row that failed once is not run again: its command does not
        work here, and the other rows' figures are still worth having.
        """
        if self.failed:
            return
        try:
            self.samples.append(fn())
        except (RuntimeError, subprocess.CalledProcessError) as e:
            log(f"{self.case}: {self.tool}: {e}")
            lines = str(e).strip().splitlines()
            errors = [l for l in lines if l.startswith("error:")]
            self.note = "failed: " + ((errors or lines or ["?"])[0][:200])
            self.failed = True

    def median(self):
        return statistics.median(s.seconds for s in self.samples) if self.samples else None

    def rss_mib(self):
        """The median peak RSS in MiB, with children (time's %M)."""
        return statistics.median(s.rss_kib for s in self.samples) / 1024

    def own_mib(self):
        """The median of the command's own peak RSS in MiB."""
        return statistics.median(s.own_kib for s in self.samples) / 1024


def vm_hwm_kib(pid):
    """A process's peak RSS so far (VmHWM), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def poll_own_peak(time_proc, interval=0.005):
    """Waits for /usr/bin/time's command, polling the command's own VmHWM.

    VmHWM only grows, so the last reading before the command exits is its
    peak, short of what it took in its last few milliseconds. Returns the
    peak in KiB (0 if the command was never seen).
    """
    tpid = time_proc.pid
    child, peak = None, 0
    while time_proc.poll() is None:
        if child is None:
            try:
                with open(f"/proc/{tpid}/task/{tpid}/children") as f:
                    pids = f.read().split()
                child = int(pids[0]) if pids else None
            except OSError:
                pass
        if child is not None:
            peak = max(peak, vm_hwm_kib(child) or 0)
        time.sleep(interval)
    return peak


class Env:
    """The scratch directory, the sshd, the stores and the command lines."""

    def __init__(self, args):
        self.args = args
        self.nixwire = os.path.abspath(args.nixwire)
        self.scratch = tempfile.mkdtemp(prefix="nixwire-bench-")
        self.sshd_dir = os.path.join(self.scratch, "sshd")
        self.store_a = os.path.join(self.scratch, "A")
        self.remotes = os.path.join(self.scratch, "remote")
        os.makedirs(self.remotes)
        self.port = args.port
        self.proxy = None
        self.proxy_port = None
        self.sshd_started = False
        self.counter = 0
        self.nix_env = dict(os.environ)
        self.nix_env.pop("NIX_REMOTE", None)
        self.nix_env.pop("NIX_SSHOPTS", None)
        self.nix_env["NIX_CONF_DIR"] = os.path.join(REPO, ".ci", "nix")
        self.nix_env["NIX_USER_CONF_FILES"] = ""

    # -- setup and teardown -------------------------------------------------

    def start_sshd(self):
        """Starts the loopback sshd and reads the env file it writes."""
        script = os.path.join(REPO, ".ci", "sshd.sh")
        self.sshd_started = True
        subprocess.run([script, "start", self.sshd_dir, str(self.port)],
                       check=True, stdout=sys.stderr)
        env = {}
        with open(os.path.join(self.sshd_dir, "env")) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                env[key] = value
        self.user = env["NIXWIRE_SSH_USER"]
        self.key = env["NIXWIRE_SSH_KEY"]
        self.host_key_b64 = env["NIXWIRE_SSH_HOST_KEY"]
        host_key = base64.b64decode(self.host_key_b64).decode().strip()
        # One known_hosts file for raw ssh and Nix: the names ssh looks up
        # for the sshd's port and the proxy's (nixwire writes its own).
        self.known_hosts = os.path.join(self.scratch, "known_hosts")
        with open(self.known_hosts, "w") as f:
            for port in (self.port, self.args.proxy_port):
                f.write(f"[127.0.0.1]:{port} {host_key}\n")

    def start_proxy(self):
        """Starts delay-proxy.py in front of the sshd (5 ms each way)."""
        self.proxy_port = self.args.proxy_port
        self.proxy = subprocess.Popen(
            [sys.executable, self.args.delay_proxy, str(self.proxy_port), str(self.port),
             str(self.args.delay_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.proxy_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"delay proxy did not listen on {self.proxy_port}")

    def close(self):
        """Stops the proxy and the sshd, and removes the scratch directory."""
        if self.proxy is not None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(5)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
        if self.sshd_started:
            subprocess.run([os.path.join(REPO, ".ci", "sshd.sh"), "stop", self.sshd_dir],
                           stdout=sys.stderr, check=False)
        if self.args.keep:
            log(f"kept {self.scratch}")
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- command lines -------------------------------------------------------

    def ssh_opts(self, port):
        """The options nixwire gives ssh (core/src/ssh.rs), for raw ssh and Nix."""
        return [
            "-p", str(port), "-i", self.key, "-x", "-a", "-T", "-oBatchMode=yes",
            "-oConnectTimeout=60", "-oTCPKeepAlive=yes", "-oServerAliveInterval=15",
            "-oServerAliveCountMax=3", "-oControlMaster=no", "-oControlPath=none",
            "-oPermitLocalCommand=no", f"-oUserKnownHostsFile={self.known_hosts}",
            "-oGlobalKnownHostsFile=/dev/null", "-oStrictHostKeyChecking=yes",
            f"-oHostKeyAlias=[127.0.0.1]:{port}", "-oCheckHostIP=no",
        ]

    def fresh_remote(self):
        """A new, empty directory for a remote chroot store."""
        self.counter += 1
        path = os.path.join(self.remotes, f"r{self.counter}")
        return path

    def nixwire_uri(self, proto, remote, port=None):
        """A store URI for nixwire: port, key and pinned host key in it."""
        return (f"{proto}://{self.user}@127.0.0.1:{port or self.port}"
                f"?remote-store={remote}&ssh-key={self.key}"
                f"&base64-ssh-public-host-key={self.host_key_b64}")

    def nix_uri(self, proto, remote):
        """A store URI for Nix 2.8, which reads no port (NIX_SSHOPTS has it)."""
        return (f"{proto}://{self.user}@127.0.0.1?remote-store={remote}"
                f"&ssh-key={self.key}&base64-ssh-public-host-key={self.host_key_b64}")

    def nix_env_for(self, port=None):
        """The environment of a Nix client: ssh options in NIX_SSHOPTS."""
        env = dict(self.nix_env)
        env["NIX_SSHOPTS"] = " ".join(self.ssh_opts(port or self.port))
        return env

    def raw_ssh(self, command, port=None):
        """The argv of plain ssh running `command` on the sshd."""
        return ["ssh", *self.ssh_opts(port or self.port),
                f"{self.user}@127.0.0.1", "--", command]

    # -- running -------------------------------------------------------------

    def nix(self, argv, **kw):
        """Runs a local Nix command (not timed) and returns its stdout."""
        out = subprocess.run(argv, env=self.nix_env, check=True, stdout=subprocess.PIPE,
                             **kw)
        return out.stdout.decode()

    def timed(self, argv, env=None, stdin=None):
        """Runs argv under /usr/bin/time; wall seconds and peak RSS.

        The wall time is taken here (monotonic clock, finer than time's
        %e); the RSS is time's %M. Fails loudly, with the command's
        stderr, if the command fails: a failed copy is not a figure.
        """
        tfile = os.path.join(self.scratch, "time.out")
        full = ["/usr/bin/time", "-o", tfile, "-f", "%e %M", *argv]
        out_f = tempfile.TemporaryFile(dir=self.scratch)
        err_f = tempfile.TemporaryFile(dir=self.scratch)
        stdin_f = open(stdin, "rb") if stdin else subprocess.DEVNULL
        # Whatever an earlier command left for the disk to write back is
        # written now, not inside this command's time.
        os.sync()
        try:
            start = time.monotonic()
            proc = subprocess.Popen(full, env=env or self.nix_env, stdin=stdin_f,
                                    stdout=out_f, stderr=err_f)
            own = poll_own_peak(proc)
            seconds = time.monotonic() - start
            out_f.seek(0)
            err_f.seek(0)
            stdout, stderr = out_f.read(), err_f.read()
        finally:
            out_f.close()
            err_f.close()
            if stdin:
                stdin_f.close()
        if proc.returncode != 0:
            raise RuntimeError(f"failed ({proc.returncode}): {' '.join(argv)[:300]}\n"
                               f"{stderr.decode(errors='replace')[-2000:]}")
        with open(tfile) as f:
            rss = int(f.read().split()[-1])
        return Sample(seconds, rss, own), stdout.decode()

    def check_valid(self, store, paths):
        """Checks (untimed) that a copy left every path valid in `store`."""
        proc = subprocess.run(["nix-store", "--store", store, "--check-validity", *paths],
                              env=self.nix_env, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"not valid in {store} afterwards: "
                               f"{proc.stderr.decode(errors='replace').strip()[-300:]}")


# -- the cases ----------------------------------------------------------------

def add_random_file(env, name, size):
    """Writes `size` random bytes to a file and adds it to store A."""
    path = os.path.join(env.scratch, name)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    store_path = env.nix(["nix-store", "--store", env.store_a, "--add", path]).strip()
    os.remove(path)
    return store_path


def add_small_files(env, count, size):
    """Adds `count` distinct files of `size` random bytes to A, in one call."""
    d = os.path.join(env.scratch, "small")
    os.makedirs(d)
    files = []
    for i in range(count):
        p = os.path.join(d, f"f{i}")
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        files.append(p)
    paths = env.nix(["nix-store", "--store", env.store_a, "--add", *files]).split()
    shutil.rmtree(d)
    assert len(paths) == count, (len(paths), count)
    return paths


def copy_tools(env, paths, runtimes, port=None):
    """The copy commands of a case: (tool, fn(remote) -> (argv, env))."""
    tools = []
    for proto in ("ssh", "ssh-ng"):
        for rt in runtimes:
            def nixwire_cmd(remote, proto=proto, rt=rt):
                return ([env.nixwire, "copy", "--runtime", rt, "--from-store", env.store_a,
                         "--to", env.nixwire_uri(proto, remote, port), *paths], env.nix_env)
            tools.append((f"nixwire {proto} ({rt})", nixwire_cmd))
    for proto in ("ssh", "ssh-ng"):
        def nix_cmd(remote, proto=proto):
            return (["nix", "--extra-experimental-features", "nix-command", "copy",
                     "--no-check-sigs", "--from", env.store_a, "--to",
                     env.nix_uri(proto, remote), *paths], env.nix_env_for(port))
        tools.append((f"nix copy {proto}", nix_cmd))
    return tools


def run_copy_case(env, case, paths, baseline_tool, baseline_argv, runs, runtimes,
                  baseline_stdin=None, port=None, rows_out=None):
    """Times copies of `paths` into fresh stores, interleaved with a baseline.

    Each run does every tool once (the baseline first), so slow phases of a
    busy machine hit every tool alike.
    """
    base = Row(case, baseline_tool)
    rows = [base]
    tools = copy_tools(env, paths, runtimes, port)
    tool_rows = [Row(case, name, baseline=baseline_tool) for name, _ in tools]
    rows += tool_rows
    for i in range(runs):
        log(f"{case}: run {i + 1}/{runs}")
        base.attempt(lambda: env.timed(baseline_argv, stdin=baseline_stdin)[0])
        for (_, make), row in zip(tools, tool_rows):
            remote = env.fresh_remote()
            argv, cmd_env = make(remote)

            def one():
                sample, _ = env.timed(argv, env=cmd_env)
                env.check_valid(remote, paths)
                return sample
            row.attempt(one)
            shutil.rmtree(remote, ignore_errors=True)
    if rows_out is not None:
        rows_out.extend(rows)
    return rows


def case_big(env, rows, runs, runtimes, size, label):
    """Case 1 (and 3): one path of `size` random bytes beside raw ssh of its NAR."""
    log(f"{label}: adding a {size // MIB} MiB path to A")
    path = add_random_file(env, f"big-{size}", size)
    nar = os.path.join(env.scratch, "nar")
    # Nix 2.8's `nix-store --store A --dump PATH` reads /nix/store, not A:
    # dump the file where the chroot store keeps it (the NAR is the same).
    with open(nar, "wb") as f:
        subprocess.run(["nix-store", "--dump", env.store_a + path],
                       env=env.nix_env, stdout=f, check=True)
    nar_size = os.path.getsize(nar)
    log(f"{label}: {path}, NAR {nar_size} bytes")
    run_copy_case(env, f"{label} (NAR {nar_size / MIB:.1f} MiB)", [path],
                  "raw ssh cat >/dev/null < NAR", env.raw_ssh("cat >/dev/null"), runs,
                  runtimes, baseline_stdin=nar, rows_out=rows)
    os.remove(nar)


def case_many(env, rows, runs, runtimes, paths):
    """Case 2: all small paths at once, beside the connection floor."""
    run_copy_case(env, f"{len(paths)} x 1 KiB", paths, "ssh true (floor)",
                  env.raw_ssh("true"), runs, runtimes, rows_out=rows)


def case_slow(env, rows, runs, paths):
    """Case 4: the 1000-path copy and path-info through the delay proxy."""
    env.start_proxy()
    port = env.proxy_port
    label = f"slow link ({2 * env.args.delay_ms:g} ms RTT)"
    run_copy_case(env, f"{label}: copy {len(paths)} paths", paths,
                  "ssh true (floor)", env.raw_ssh("true", port), runs, ["tokio"],
                  port=port, rows_out=rows)
    # path-info against a store holding the paths (filled once, untimed).
    filled = env.fresh_remote()
    subprocess.run([env.nixwire, "copy", "--from-store", env.store_a, "--to",
                    env.nixwire_uri("ssh-ng", filled), *paths],
                   env=env.nix_env, check=True, stdout=subprocess.DEVNULL)
    case = f"{label}: path-info {len(paths)} paths"
    floor = Row(case, "ssh true (floor)")
    tools = []
    for proto in ("ssh", "ssh-ng"):
        tools.append((Row(case, f"nixwire {proto} (tokio)", baseline=floor.tool),
                      [env.nixwire, "path-info", "--store",
                       env.nixwire_uri(proto, filled, port), *paths], env.nix_env))
    for proto in ("ssh", "ssh-ng"):
        tools.append((Row(case, f"nix path-info {proto}", baseline=floor.tool),
                      ["nix", "--extra-experimental-features", "nix-command", "path-info",
                       "--store", env.nix_uri(proto, filled), *paths],
                      env.nix_env_for(port)))
    for i in range(runs):
        log(f"{case}: run {i + 1}/{runs}")
        floor.attempt(lambda: env.timed(env.raw_ssh("true", port))[0])
        for row, argv, cmd_env in tools:
            def one(argv=argv, cmd_env=cmd_env):
                sample, out = env.timed(argv, env=cmd_env)
                if len(out.splitlines()) < len(paths):
                    raise RuntimeError(f"{len(out.splitlines())} lines, not {len(paths)}")
                return sample
            row.attempt(one)
    rows.append(floor)
    rows.extend(row for row, _, _ in tools)


def has_build(env):
    """Whether the nixwire binary has a `build` subcommand."""
    proc = subprocess.run([env.nixwire, "build", "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    return proc.returncode == 0


def build_nixwire(env, drv):
    """One timed `nixwire build` of drv on a fresh remote store."""
    remote = env.fresh_remote()
    try:
        sample, out = env.timed(
            [env.nixwire, "build", "--store", env.nixwire_uri("ssh-ng", remote),
             "--local-store", env.store_a, drv])
        if not out.split():
            raise RuntimeError("nixwire build printed no output path")
        env.check_valid(env.store_a, out.split())
        return sample
    finally:
        shutil.rmtree(remote, ignore_errors=True)


def build_nix(env, drv):
    """One timed `nix-build -j0 --builders` of drv on a fresh remote store.

    `--builders` takes machines-file lines: URI, systems, key, max jobs,
    speed factor, supported and mandatory features, base64 host key. Nix
    2.8 reads no port in the URI: the port comes from NIX_SSHOPTS, which
    the build hook inherits.
    """
    remote = env.fresh_remote()
    # The key and host key go in their columns, not the URI: Nix 2.8 names
    # a lock file after the URI, and with them it is too long a name.
    machine = (f"ssh-ng://{env.user}@127.0.0.1?remote-store={remote} x86_64-linux "
               f"{env.key} 1 1 - - {env.host_key_b64}")
    try:
        sample, out = env.timed(
            ["nix-build", "--store", env.store_a, "-j0", "--no-out-link",
             "--builders", machine, drv], env=env.nix_env_for())
        env.check_valid(env.store_a, out.split())
        return sample
    finally:
        shutil.rmtree(remote, ignore_errors=True)


def case_chain(env, rows, runs, length):
    """Case 5: a chain of dependent derivations built on the remote store."""
    case = f"chain of {length} builds"
    expr = os.path.join(env.scratch, "chain.nix")
    with open(expr, "w") as f:
        f.write(CHAIN_NIX)

    def instantiate():
        nonce = secrets.token_hex(8)
        return env.nix(["nix-instantiate", "--store", env.store_a, "--argstr", "nonce",
                        nonce, "--arg", "n", str(length), expr],
                       stderr=subprocess.DEVNULL).strip()

    nix_row = Row(case, "nix-build -j0 --builders ssh-ng")
    nw_row = None
    if has_build(env):
        nw_row = Row(case, "nixwire build ssh-ng (tokio)", baseline=nix_row.tool)
    else:
        log(f"{case}: {env.nixwire} has no `build` subcommand: nixwire skipped")
        skipped = Row(case, "nixwire build ssh-ng",
                      note="skipped: the binary has no `build` subcommand")
    for i in range(runs):
        log(f"{case}: run {i + 1}/{runs}")
        if nw_row is not None:
            nw_row.attempt(lambda: build_nixwire(env, instantiate()))
        nix_row.attempt(lambda: build_nix(env, instantiate()))
    rows.append(nix_row)
    rows.append(nw_row if nw_row is not None else skipped)


# -- output -------------------------------------------------------------------

def table(rows, runs):
    """The markdown table: medians, ratio to the case's baseline, RSS."""
    out = [f"| case | command | median of {runs} (s) | ratio "
           "| peak RSS, own (MiB) | peak RSS, with children (MiB) |",
           "|---|---|---|---|---|---|"]
    by_case = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.tool] = row
    for row in rows:
        med = row.median()
        ratio = ""
        base = by_case[row.case].get(row.baseline) if row.baseline else None
        if base is not None and med is not None and base.median():
            ratio = f"{med / base.median():.2f} x {row.baseline}"
        med_s = f"{med:.3f}" if med is not None else "-"
        rss = f"{row.rss_mib():.1f}" if row.samples else "-"
        own = f"{row.own_mib():.1f}" if row.samples else "-"
        tool = f"{row.tool} ({row.note})" if row.note else row.tool
        out.append(f"| {row.case} | {tool} | {med_s} | {ratio} | {own} | {rss} |")
    return "\n".join(out)


def parse_args(argv):
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nixwire", default=os.path.join(REPO, "target", "release", "nixwire"),
                   help="the nixwire binary (default: this tree's target/release/nixwire)")
    p.add_argument("--runs", type=int, default=None,
                   help="runs per figure (default 5, or 2 with --quick)")
    p.add_argument("--runtimes", default="tokio",
                   help="comma-separated nixwire runtimes: tokio,smol,blocking")
    p.add_argument("--slow", action="store_true", help="also the delay-proxy case")
    p.add_argument("--chain", action="store_true", help="also the chain-of-builds case")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 2 runs, 16 and 4 MiB paths, 100 small paths")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--only", default="big,many",
                   help="comma-separated cases: big (the 256 and 16 MiB paths), many (1000 "
                        "small paths); --slow and --chain add theirs (default big,many)")
    p.add_argument("--port", type=int, default=2210, help="the sshd's port (default 2210)")
    p.add_argument("--proxy-port", type=int, default=2211,
                   help="the delay proxy's port for --slow (default 2211)")
    p.add_argument("--delay-proxy", default=DELAY_PROXY,
                   help="delay-proxy.py for --slow (default: ../shared/tools/latency)")
    p.add_argument("--delay-ms", type=float, default=5,
                   help="the proxy's one-way delay for --slow (default 5)")
    args = p.parse_args(argv)
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    return args


def main(argv):
    args = parse_args(argv)
    if not os.access(args.nixwire, os.X_OK):
        sys.exit(f"no nixwire binary at {args.nixwire} (cargo build --release -p nixwire)")
    big, medium, many, chain = (16 * MIB, 4 * MIB, 100, 3) if args.quick else \
        (256 * MIB, 16 * MIB, 1000, 10)
    env = Env(args)
    rows = []
    started = time.time()
    try:
        env.start_sshd()
        only = set(args.only.split(","))
        if "big" in only:
            case_big(env, rows, args.runs, args.runtimes, big, f"1 path of {big // MIB} MiB")
            case_big(env, rows, args.runs, args.runtimes, medium,
                     f"1 path of {medium // MIB} MiB")
        if "many" in only or args.slow:
            log(f"adding {many} paths of 1 KiB to A")
            small = add_small_files(env, many, 1024)
        if "many" in only:
            case_many(env, rows, args.runs, args.runtimes, small)
        if args.slow:
            case_slow(env, rows, args.runs, small)
        if args.chain:
            case_chain(env, rows, args.runs, chain)
    finally:
        env.close()
    print(f"nixwire: {args.nixwire}; Nix: "
          f"{subprocess.run(['nix', '--version'], stdout=subprocess.PIPE).stdout.decode().strip()}"
          f"; {os.cpu_count()} cores; {time.time() - started:.0f} s in all\n")
    print(table(rows, args.runs))


if __name__ == "__main__":
    main(sys.argv[1:])
