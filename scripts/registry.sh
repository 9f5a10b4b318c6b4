#!/usr/bin/env bash
# The registry workflow on one machine, for the node that
# ./scripts/run-node.sh runs:
#
#   ./scripts/registry.sh serve &              # a registry in .blvm/registry, served on 127.0.0.1:8420
#   ./scripts/registry.sh publish block-stats  # pack, sign and publish modules/block-stats
#   ./scripts/registry.sh install block-stats  # the running node installs it from the registry
#
# `serve` creates the registry once and tells the node (its blvm.toml) to
# trust the registry's root; `publish` makes a maintainer key once and
# tells the node to trust it. The node reads blvm.toml at start: start or
# restart ./scripts/run-node.sh after the first `serve` and `publish`.
# BLVM_DATADIR, BLVM_REGISTRY_DIR and BLVM_REGISTRY_ADDR change the
# defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
datadir="${BLVM_DATADIR:-$PWD/.blvm/regtest}"
registry="${BLVM_REGISTRY_DIR:-$PWD/.blvm/registry}"
addr="${BLVM_REGISTRY_ADDR:-127.0.0.1:8420}"
key="$PWD/.blvm/maintainer.key"
conf="$datadir/blvm.toml"

usage() {
    echo "usage: scripts/registry.sh serve | publish <module> | install <module>" >&2
    exit 2
}

# Appends `text` to the node's config unless it already has `header`.
configure() {
    local header="$1" text="$2"
    mkdir -p "$datadir"
    if [ -f "$conf" ] && grep -qF "$header" "$conf"; then
        echo "registry.sh: $conf already has $header; left as it is" >&2
        return
    fi
    printf '\n%s\n' "$text" >>"$conf"
    echo "registry.sh: added $header to $conf (restart the node to read it)" >&2
}

case "${1:-}" in
serve)
    cargo build --release -p blvm-registry
    if [ ! -f "$registry/registry.json" ]; then
        target/release/blvm-registry init "$registry"
    fi
    mkdir -p "$datadir"
    cp "$registry/repository/metadata/1.root.json" "$datadir/registry-root.json"
    configure "[registry]" "[registry]
url = \"http://$addr\"
root = \"registry-root.json\""
    exec target/release/blvm-registry serve "$registry" --listen "$addr"
    ;;
publish)
    name="${2:-}"
    [ -n "$name" ] && [ -f "modules/$name/module.toml" ] || usage
    cargo build --release -p blvm-registry -p "$name"
    mkdir -p "$(dirname "$key")"
    if [ ! -f "$key" ]; then
        target/release/blvm-module keygen "$key"
    fi
    work="$PWD/.blvm/publish/$name"
    rm -rf "$work"
    mkdir -p "$work"
    cp "modules/$name/module.toml" "$work/module.toml"
    entry_point="$(sed -n 's/^entry_point *= *"\(.*\)"/\1/p' "$work/module.toml")"
    install -m 0755 "target/release/$name" "$work/${entry_point:-$name}"
    target/release/blvm-module pack "$work/module.toml"
    target/release/blvm-module sign "$work/module.toml" --key "$key" --name maintainer --write
    # The maintainer's public key, as the signature entry states it.
    public="$(sed -n 's/.*key = "\([0-9a-f]\{66\}\)".*/\1/p' "$work/module.toml" | head -n 1)"
    configure "[trust.keys]" "[trust.keys]
maintainer = \"$public\""
    target/release/blvm-module publish --registry "http://$addr" --key "$key" "$work/module.toml"
    ;;
install)
    name="${2:-}"
    [ -n "$name" ] || usage
    cargo build --release -p blvm-node
    exec target/release/blvm-node --datadir "$datadir" module install "$name"
    ;;
*)
    usage
    ;;
esac
