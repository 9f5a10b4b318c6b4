#!/usr/bin/env bash
# Fuzzes the decoders that untrusted input reaches (fuzz/fuzz_targets):
#
#   scripts/fuzz.sh TARGET SECONDS    one target for SECONDS
#   scripts/fuzz.sh all SECONDS       every target, SECONDS each
#   scripts/fuzz.sh list              the targets
#   FUZZ_RUNS=N scripts/fuzz.sh ...   stop each target after N executions
#                                     (or SECONDS, whichever comes first)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable
# toolchain, without a sanitizer (`-s none`: libFuzzer's coverage only;
# the code under test is safe Rust, and a panic, a hang past -timeout or
# memory past -rss_limit_mb, 2048 MB, is the failure).
# Each target starts from a seed corpus made from the checked-in test
# vectors and real manifests (fuzz/corpus/<target>, kept between runs, not
# committed). A crash or hang is saved in fuzz/artifacts/<target>/ and the
# run fails: turn it into a regression test in the normal suite, then fix
# it. Prints per target the executions run, the coverage reached and the
# wall time, and at the end a summary line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
targets=(frame_stream event_decode event_roundtrip params handshake manifest manifest_structured tuf_metadata jsonrpc_request)
# The memory cap, MB (libFuzzer checks the process's RSS every second):
# the allocation bound property.
rss_limit_mb=2048
summary=()

usage() {
    echo "usage: scripts/fuzz.sh TARGET|all SECONDS | list" >&2
    exit 2
}

# Seeds for `target` in fuzz/corpus/<target>.
seed() {
    local target="$1" dir="$root/fuzz/corpus/$1" n=0
    mkdir -p "$dir"
    case "$target" in
    frame_stream)
        # A read size, then a real frame stream: each vector, and all at once.
        for f in crates/blvm-module-protocol/tests/vectors/*.bin; do
            { printf '\x07'; cat "$f"; } >"$dir/seed-$(basename "$f")"
        done
        { printf '\x01'; cat crates/blvm-module-protocol/tests/vectors/*.bin; } >"$dir/seed-all"
        ;;
    event_decode)
        for f in crates/blvm-module-protocol/tests/vectors/event*.bin; do
            n=$((n + 1))
            { printf '\x00'; tail -c +5 "$f"; } >"$dir/seed-$n"
        done
        ;;
    params)
        # A row of the method table, then the params of a real request.
        for f in crates/blvm-module-protocol/tests/vectors/*.bin; do
            n=$((n + 1))
            { printf "\\x$(printf %02x $((n % 52)))"; tail -c +5 "$f"; } >"$dir/seed-$n"
        done
        ;;
    handshake)
        # Each vector as a connection's stream (a hello among them), and
        # structured hellos.
        for f in crates/blvm-module-protocol/tests/vectors/*.bin; do
            { printf '\x00'; cat "$f"; } >"$dir/seed-$(basename "$f")"
        done
        for b in 0 1 2 3; do
            printf "\\x01\\x0$b\\x02\\x02\\x02\\x02\\x02\\x02" >"$dir/seed-structured-$b"
        done
        ;;
    event_roundtrip | manifest_structured)
        # Structure-aware: any bytes make a value; these are a start.
        for f in crates/blvm-module-protocol/tests/vectors/*.bin modules/*/module.toml; do
            n=$((n + 1))
            cp "$f" "$dir/seed-$n"
        done
        ;;
    manifest)
        for f in modules/*/module.toml; do
            cp "$f" "$dir/seed-$(basename "$(dirname "$f")").toml"
        done
        ;;
    jsonrpc_request)
        printf '%s' '{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}' >"$dir/seed-single"
        printf '%s' '[{"id":1,"method":"echo","params":{"value":"x"}},{"jsonrpc":"2.0","method":"nope"}]' >"$dir/seed-batch"
        printf '%s' '{"jsonrpc":"1.0","id":"a","method":"echo"}' >"$dir/seed-1.0"
        ;;
    tuf_metadata)
        printf '%s' '{"signed":{"_type":"root","spec_version":"1.0.0","version":1,"expires":"2030-01-01T00:00:00Z","consistent_snapshot":true,"keys":{},"roles":{}},"signatures":[]}' >"$dir/seed-root"
        ;;
    *)
        usage
        ;;
    esac
}

# Fuzzes `target` for `seconds` (and at most FUZZ_RUNS executions);
# prints its executions, coverage and wall time.
run() {
    local target="$1" seconds="$2" log start wall
    local -a limits=(-max_total_time="$seconds")
    [ -z "${FUZZ_RUNS:-}" ] || limits+=(-runs="$FUZZ_RUNS")
    seed "$target"
    log="$(mktemp)"
    if ! (cd fuzz && cargo fuzz build -s none "$target") >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        return 1
    fi
    start="$(date +%s)"
    if ! (cd fuzz && cargo fuzz run -s none "$target" "corpus/$target" -- \
        "${limits[@]}" -rss_limit_mb="$rss_limit_mb" -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $target failed; the input is in fuzz/artifacts/$target/" >&2
        rm -f "$log"
        return 1
    fi
    wall=$(($(date +%s) - start))
    local runs cov ft
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)"
    cov="$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -n 1 | sed 's/cov: //')"
    ft="$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -n 1 | sed 's/ft: //')"
    local line="$target: ${runs:-?} executions in ${wall} s, cov: ${cov:-?} edges, ft: ${ft:-?} features, no crash"
    echo "fuzz.sh: $line"
    summary+=("$line")
    rm -f "$log"
}

case "${1:-}" in
list)
    printf '%s\n' "${targets[@]}"
    ;;
all)
    [ -n "${2:-}" ] || usage
    for target in "${targets[@]}"; do
        run "$target" "$2"
    done
    echo "fuzz.sh: every target:"
    printf '  %s\n' "${summary[@]}"
    ;;
"")
    usage
    ;;
*)
    [ -n "${2:-}" ] || usage
    run "$1" "$2"
    ;;
esac
