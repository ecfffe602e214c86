# A derivation that needs nothing but /bin/sh, so that `nixwire build` can
# be tried on a fresh machine with only Debian's nix-bin:
#
#   nixwire build $(nix-instantiate examples/hello.nix)
#
# It prints a few log lines, waits `seconds`, and writes its output.
{ seconds ? "1", greeting ? "hello from nixwire" }:
derivation {
  name = "nixwire-hello";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  # Without a sandbox the build sees the host; take its tools.
  PATH = "/usr/bin:/bin";
  args = [
    "-c"
    ''
      echo "building $name on $(uname -n)"
      i=0
      while [ $i -lt ${seconds} ]; do echo "working ($i)"; sleep 1; i=$((i + 1)); done
      echo "${greeting}" > $out
      echo "done: $out"
    ''
  ];
}
