let m = import ./multi.nix; in
derivation { name = "uses-multi"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "ls ${m.dev} ${m.bin} > $out" ]; }
