"""Downloads one target with the unmodified python-tuf client.

Usage: python_tuf_client.py METADATA_DIR TARGET_DIR BASE_URL TARGET_PATH

METADATA_DIR holds the trusted root.json. Prints the downloaded file's path
and the target's custom data as JSON; exits non-zero with python-tuf's error
when it refuses.
"""

import inspect
import json
import sys

from tuf.ngclient import Updater


def main():
    metadata_dir, target_dir, base_url, target_path = sys.argv[1:5]
    # tuf 7 makes the caller say where the trusted root comes from: None
    # is METADATA_DIR/root.json, what older versions always read.
    extra = {}
    if "bootstrap" in inspect.signature(Updater).parameters:
        extra["bootstrap"] = None
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=f"{base_url}/metadata/",
        target_dir=target_dir,
        target_base_url=f"{base_url}/targets/",
        **extra,
    )
    updater.refresh()
    info = updater.get_targetinfo(target_path)
    if info is None:
        sys.exit(f"python-tuf: no target {target_path}")
    try:
        path = updater.download_target(info)
    except Exception as e:  # the refusal is the answer the test reads
        sys.exit(f"python-tuf refused: {type(e).__name__}: {e}")
    print(path)
    print(json.dumps(info.custom))


if __name__ == "__main__":
    main()
