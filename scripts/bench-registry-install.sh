#!/usr/bin/env bash
# How long `blvm-node module install block-stats` takes from a registry on
# this machine, next to loading the same module from disk.
#
# A registry (blvm-registry serve) and a node (no timer, no other module)
# run in a temporary directory; block-stats is published once. Then, in
# interleaved rounds:
#   system:   module install block-stats  (refresh the TUF metadata,
#             download and verify manifest and binary, check signatures,
#             stage, rename, then load: verify, stage, spawn, handshake)
#   baseline: module unload + module load  (the load alone, from disk)
# each preceded by the step that undoes it. Prints per round the wall time
# and the node's CPU time (utime+stime from /proc) of each, and the ratio
# in that round; then medians with min and max. Needs a release build
# (the script builds it) and the sandbox (run as root for all layers).
#
#   scripts/bench-registry-install.sh [ROUNDS]   (default 9)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-9}"
cargo build --release -q -p blvm-node -p blvm-registry -p block-stats
bin="$PWD/target/release"
tmp="$(mktemp -d /tmp/blvm-bench-install.XXXXXX)"
chmod 755 "$tmp"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
reg_port=18520
rpc_port=18543

"$bin/blvm-registry" init "$tmp/registry" >/dev/null
"$bin/blvm-registry" serve "$tmp/registry" --listen "127.0.0.1:$reg_port" >"$tmp/serve.log" 2>&1 &
until grep -q "listening on" "$tmp/serve.log"; do sleep 0.1; done

mkdir -p "$tmp/publish" "$tmp/node/modules"
cp modules/block-stats/module.toml "$tmp/publish/module.toml"
install -m 0755 "$bin/block-stats" "$tmp/publish/block-stats"
"$bin/blvm-module" keygen "$tmp/alice.key" >/dev/null
"$bin/blvm-module" pack "$tmp/publish/module.toml" >/dev/null
"$bin/blvm-module" sign "$tmp/publish/module.toml" --key "$tmp/alice.key" --name alice --write >/dev/null
"$bin/blvm-module" publish --registry "http://127.0.0.1:$reg_port" --key "$tmp/alice.key" "$tmp/publish/module.toml" >/dev/null
public="$(sed -n 's/.*key = "\([0-9a-f]\{66\}\)".*/\1/p' "$tmp/publish/module.toml" | head -n 1)"
cp "$tmp/registry/repository/metadata/1.root.json" "$tmp/node/root.json"
cat >"$tmp/node/blvm.toml" <<EOF
rpcport = $rpc_port
block_interval = 0
[registry]
url = "http://127.0.0.1:$reg_port"
root = "root.json"
[trust.keys]
alice = "$public"
EOF
"$bin/blvm-node" --datadir "$tmp/node" >"$tmp/node.log" 2>&1 &
node_pid=$!
until grep -q "blvm-node started" "$tmp/node.log"; do sleep 0.1; done

cli() { "$bin/blvm-node" --datadir "$tmp/node" module "$@" >/dev/null; }
# The node's CPU time in clock ticks (utime + stime, all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$node_pid/stat"; }
ticks_per_s="$(getconf CLK_TCK)"
# Runs "$@" and prints "wall_ms cpu_ms".
measure() {
    local t0 c0 t1 c1
    c0="$(cpu_ticks)"
    t0="$(date +%s%N)"
    "$@"
    t1="$(date +%s%N)"
    c1="$(cpu_ticks)"
    echo "$(( (t1 - t0) / 1000000 )) $(( (c1 - c0) * 1000 / ticks_per_s ))"
}

# A first install warms the page cache and the node's registry state.
cli install block-stats
printf '%-6s %12s %12s %12s %12s %8s\n' round install_ms node_cpu_ms load_ms node_cpu_ms ratio
results=()
for round in $(seq 1 "$rounds"); do
    cli remove block-stats
    read -r iw ic < <(measure cli install block-stats)
    cli unload block-stats
    read -r lw lc < <(measure cli load block-stats)
    ratio="$(awk -v a="$iw" -v b="$lw" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    printf '%-6s %12s %12s %12s %12s %8s\n' "$round" "$iw" "$ic" "$lw" "$lc" "$ratio"
    results+=("$iw $ic $lw $lc $ratio")
done
summary() {
    local col="$1" label="$2"
    printf '%s\n' "${results[@]}" | awk -v c="$col" '{print $c}' | sort -g | awk -v l="$label" \
        '{v[NR]=$1} END { printf "%-28s median %8s  (min %s, max %s)\n", l, v[int((NR+1)/2)], v[1], v[NR] }'
}
echo "block-stats: $(stat -c %s "$bin/block-stats") bytes; $rounds rounds"
summary 1 "install wall ms"
summary 2 "install node CPU ms"
summary 3 "load-from-disk wall ms"
summary 4 "load-from-disk node CPU ms"
summary 5 "ratio install / load"
