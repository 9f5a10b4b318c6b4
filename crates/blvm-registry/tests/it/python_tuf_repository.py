"""Writes a TUF repository with python-tuf's own metadata API.

Usage: python_tuf_repository.py REPO_DIR TARGET_PATH LOCAL_FILE

REPO_DIR gets metadata/ (1.root.json, 1.targets.json, 1.snapshot.json,
timestamp.json) and targets/HASH.name, consistent snapshots on, one fresh
ed25519 key per role, all expiring in a week.
"""

import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer


def main():
    repo_dir, target_path, local_file = sys.argv[1:4]
    metadata_dir = os.path.join(repo_dir, "metadata")
    os.makedirs(metadata_dir, exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    signers = {role: CryptoSigner.generate_ed25519() for role in ("root", "targets", "snapshot", "timestamp")}

    root = Root(expires=expires, consistent_snapshot=True)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    targets = Targets(expires=expires)
    target = TargetFile.from_file(target_path, local_file, ["sha256"])
    target.unrecognized_fields["custom"] = {"written_by": "python-tuf"}
    targets.targets[target_path] = target
    # Defaults: snapshot lists targets.json version 1, timestamp lists
    # snapshot.json version 1, each by version only.
    files = {
        "1.root.json": Metadata(root),
        "1.targets.json": Metadata(targets),
        "1.snapshot.json": Metadata(Snapshot(expires=expires)),
        "timestamp.json": Metadata(Timestamp(expires=expires)),
    }
    for name, metadata in files.items():
        metadata.sign(signers[metadata.signed.type])
        metadata.to_file(os.path.join(metadata_dir, name), JSONSerializer(compact=False))

    directory, _, basename = target_path.rpartition("/")
    served = os.path.join(repo_dir, "targets", directory, f"{target.hashes['sha256']}.{basename}")
    os.makedirs(os.path.dirname(served), exist_ok=True)
    with open(local_file, "rb") as src, open(served, "wb") as dst:
        dst.write(src.read())


if __name__ == "__main__":
    main()
