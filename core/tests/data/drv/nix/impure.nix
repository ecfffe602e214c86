derivation { name = "impure"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "date > $out" ]; __impure = true; }
