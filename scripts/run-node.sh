#!/usr/bin/env bash
# Builds the node and the example modules, installs the modules into the
# node's modules directory, and starts blvm-node on its embedded default:
# regtest, its own data dir, JSON-RPC on 127.0.0.1:18443, a block every
# 10 seconds, Prometheus metrics on http://127.0.0.1:9332/metrics. Extra
# arguments go to blvm-node (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
datadir="${BLVM_DATADIR:-$PWD/.blvm/regtest}"
root=false
[ "$(id -u)" -eq 0 ] && root=true
if $root && ! unshare --mount true 2>/dev/null; then
    # Root, but no mount namespaces (a container that forbids them). Each
    # module still runs as its own uid, which then reaches its data dir,
    # binary and socket through the host's directories: every directory
    # above the data dir must let others search it (o+x), or the node
    # cannot drop the module's uid. Checked before anything is built.
    dir="$datadir"
    while [ "$dir" != "/" ]; do
        if [ -d "$dir" ] && [ $(( 0$(stat -c %a "$dir") & 1 )) -eq 0 ]; then
            echo "run-node.sh: $dir is not searchable by other users (mode $(stat -c %a "$dir")), and without mount namespaces the modules' own uids must pass through it: chmod o+x $dir, or set BLVM_DATADIR to a directory under searchable ones" >&2
            exit 1
        fi
        dir="$(dirname "$dir")"
    done
    no_mount_namespaces=true
else
    no_mount_namespaces=false
fi
# Every example module is a crate named after its folder.
packages=(-p blvm-node)
for module in modules/*/; do
    [ -f "$module/Cargo.toml" ] && packages+=(-p "$(basename "$module")")
done
cargo build --release "${packages[@]}"
for module in modules/*/; do
    name="$(basename "$module")"
    [ -f "$module/module.toml" ] || continue
    if [ -x "$module/install.sh" ]; then
        # A script module (fee-histogram, in Python) installs itself: its
        # files, and its libraries vendored beside it (the sandbox shows
        # it only /usr and its own folder).
        "$module/install.sh" "$datadir/modules/$name"
        continue
    fi
    mkdir -p "$datadir/modules/$name"
    cp "$module/module.toml" "$datadir/modules/$name/module.toml"
    [ -f "$module/config.toml" ] && cp "$module/config.toml" "$datadir/modules/$name/config.toml"
    install -m 0755 "target/release/$name" "$datadir/modules/$name/$name"
done
if [[ " $* " != *" --sandbox-mode"* ]]; then
    if ! $root; then
        # Without root the node can neither create cgroups, namespaces or
        # data dir images nor give modules their own uids: strict mode
        # would refuse to start them. Run them with the layers this user
        # can apply; their status lists the missing ones.
        echo "run-node.sh: not root; modules run in --sandbox-mode permissive (see docs/security.md)" >&2
        set -- --sandbox-mode permissive "$@"
    elif $no_mount_namespaces; then
        # Strict mode would refuse every module for the missing layer.
        echo "run-node.sh: no mount namespaces on this host; modules run in --sandbox-mode permissive (see docs/security.md)" >&2
        set -- --sandbox-mode permissive "$@"
    fi
fi
if [[ " $* " != *" --metrics-bind"* ]]; then
    set -- --metrics-bind "${BLVM_METRICS_BIND:-127.0.0.1:9332}" "$@"
fi
exec target/release/blvm-node --datadir "$datadir" "$@"
