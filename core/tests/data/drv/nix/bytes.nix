derivation { name = "bytes"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ÿþ  > $out" ]; latin1 = "café"; }
