let fixed = import ./fixed.nix; a = import ./a.nix; in
derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "bin" ]; args = [ "-c" "mkdir $out $dev $bin; ls ${fixed} ${a}" ]; zzz = "last"; AAA = "first"; }
