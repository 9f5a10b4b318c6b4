#!/usr/bin/env bash
# Builds the node and the example modules, installs the modules into the
# node's modules directory, and starts blvm-node on its embedded default:
# regtest, its own data dir, JSON-RPC on 127.0.0.1:18443, a block every
# 10 seconds. Extra arguments go to blvm-node (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
datadir="${BLVM_DATADIR:-$PWD/.blvm/regtest}"
cargo build --release -p blvm-node -p block-stats -p fee-watcher
for module in modules/*/; do
    name="$(basename "$module")"
    [ -f "$module/module.toml" ] || continue
    mkdir -p "$datadir/modules/$name"
    cp "$module/module.toml" "$datadir/modules/$name/module.toml"
    [ -f "$module/config.toml" ] && cp "$module/config.toml" "$datadir/modules/$name/config.toml"
    install -m 0755 "target/release/$name" "$datadir/modules/$name/$name"
done
if [ "$(id -u)" -ne 0 ] && [[ " $* " != *" --sandbox-mode"* ]]; then
    # Without root the node can neither create cgroups, namespaces or
    # data dir images nor give modules their own uids: strict mode would
    # refuse to start them. Run them with the layers this user can apply;
    # their status lists the missing ones.
    echo "run-node.sh: not root; modules run in --sandbox-mode permissive (see docs/security.md)" >&2
    set -- --sandbox-mode permissive "$@"
fi
exec target/release/blvm-node --datadir "$datadir" "$@"
