#!/bin/sh
# Installs fee-histogram into DEST (a modules directory's `fee-histogram/`):
# its manifest and script, and the blvm-module SDK with msgpack vendored
# into DEST/vendor, where main.py finds them. The module runs on
# /usr/bin/python3, so nothing outside /usr and its folder need be readable
# under the sandbox.
#   usage: modules/fee-histogram/install.sh DEST   (PYTHON=… picks the pip)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: install.sh DEST}
mkdir -p "$dest"
cp "$here/module.toml" "$dest/module.toml"
install -m 0755 "$here/main.py" "$dest/main.py"
rm -rf "$dest/vendor"
"${PYTHON:-python3}" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$dest/vendor" "$here/../../sdk/python"
