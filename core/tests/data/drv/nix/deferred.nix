let f = import ./floating.nix; in
derivation { name = "deferred"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${f} > $out" ]; }
