"""What the Python test module answers to `module_call`."""
import json
import os
import sys

import wire


def whoami():
    """Where its code and interpreter come from, and who runs it."""
    return json.dumps({
        "wire": wire.__file__,
        "answers": __file__,
        "prefix": sys.prefix,
        "executable": sys.executable,
        "uid": os.getuid(),
    })


def read(path):
    """Reads a file: ALLOWED <bytes> or BLOCKED <errno name>."""
    try:
        with open(path, "rb") as f:
            return f"ALLOWED {len(f.read())}"
    except OSError as e:
        import errno
        return f"BLOCKED {errno.errorcode.get(e.errno, e.errno)}"
