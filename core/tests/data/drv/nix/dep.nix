let a = import ./a.nix; in
derivation { name = "with-input"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${a} > $out" ]; src = ./a.nix; }
