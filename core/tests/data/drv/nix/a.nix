derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo \"quoted\" \\\\ back\nnew line\tand tab\r > $out" ]; }
