#!/bin/sh
# Fills fuzz/corpus/<target>/ with seeds from the repository's data, for
# `cargo +nightly fuzz run <target>` and fuzz/run.sh. The corpora are not
# committed (fuzz/.gitignore); rerun this after a fresh checkout.
#
#   serve_client, worker_client   the server->client bytes of every transcript
#                                 under conformance/captures, behind the
#                                 target's header (split seed 0, then the
#                                 requests the recorded client made)
#   serve_server, worker_server   the client->server bytes, behind split seed 0
#   nar_framer                    every NAR found in those streams
#   nar_writer                    nothing: its inputs are tree programs, which
#                                 the fuzzer grows from the empty one
#   aterm                         core/tests/data/drv/*.drv
#   machines, store_path_and_uri  fuzz/seeds/<target>/*
#
# Needs python3 (for the JSON and base64 of the transcripts).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus="$here/corpus"
mkdir -p "$corpus"

python3 - "$root/conformance/captures" "$corpus" <<'PY'
import base64, glob, json, os, struct, sys

captures, corpus = sys.argv[1], sys.argv[2]
for t in ("serve_client", "serve_server", "worker_client", "worker_server", "nar_framer"):
    os.makedirs(os.path.join(corpus, t), exist_ok=True)

# The worker client's requests by scenario (every Nix client starts with
# SetOptions); see fuzz/fuzz_targets/worker_client.rs for the codes.
WORKER_OPS = {"ping": (19, 0), "path-info": (19, 26), "copy-from": (19, 38),
              "copy-to": (19, 31), "build": (19, 36), "build-fail": (19, 36),
              "store-build": (19, 0)}
NAR_MAGIC = struct.pack("<Q", 13) + b"nix-archive-1"

def write(target, name, data):
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)

count = 0
for conn in sorted(glob.glob(os.path.join(captures, "*", "conn*.json"))):
    t = json.load(open(conn))
    name = os.path.basename(os.path.dirname(conn)) + "-" + os.path.basename(conn)[:-5]
    streams = {"client": b"", "server": b""}
    for chunk in t["chunks"]:
        if chunk["from"] in streams:
            streams[chunk["from"]] += base64.b64decode(chunk["data"])
    c, s = streams["client"], streams["server"]
    if t["protocol"] == "serve":
        # After the 16-byte hello, the client's first word is its first command.
        first = struct.unpack("<Q", c[16:24])[0] if len(c) >= 24 else 0
        ops = (first if first < 256 else 0, 0)
    else:
        ops = WORKER_OPS.get(t["scenario"], (19, 0))
    proto = t["protocol"]
    write(proto + "_client", name, bytes([0, ops[0], ops[1]]) + s)
    write(proto + "_server", name, bytes([0]) + c)
    for side, data in (("c", c), ("s", s)):
        at = data.find(NAR_MAGIC)
        if at >= 0:
            write("nar_framer", name + "-" + side, bytes([0]) + data[at:])
    count += 1
print(f"seed.sh: {count} transcripts", file=sys.stderr)
PY

mkdir -p "$corpus/aterm" "$corpus/machines" "$corpus/store_path_and_uri"
cp "$root"/core/tests/data/drv/*.drv "$corpus/aterm/"
cp "$here"/seeds/machines/* "$corpus/machines/"
cp "$here"/seeds/store_path_and_uri/* "$corpus/store_path_and_uri/"
for t in "$corpus"/*; do
    echo "$(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sh "$t" | cut -f1)"
done
