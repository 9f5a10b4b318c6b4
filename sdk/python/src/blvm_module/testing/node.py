"""A real ``blvm-node`` for tests: its own data dir, regtest, a free
JSON-RPC port, no block timer, the sandbox as the host allows; modules
installed from folders, each behind the frame recorder, whose reports
:meth:`BlvmNode.frame_problems` collects from the node's log.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import blvm_module

#: The regtest address of P2WSH(OP_TRUE), the node's default mining address:
#: its outputs are spent with the witness ``[OP_TRUE]`` and no signature.
OP_TRUE_ADDRESS = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85"
#: Its script: ``OP_0 <sha256(OP_TRUE)>``.
OP_TRUE_SCRIPT = bytes.fromhex("00204ae81572f06e1b88fd5ced7a1a000945432e83e1551e6f721ee9c00b8cc33260")
DEADLINE = 60.0
MARK = "BLVM-FRAME-CHECK"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class RpcError(Exception):
    """A JSON-RPC error answer: ``code`` and ``message``."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def find_node_binary() -> Path:
    """``$BLVM_NODE_BIN``, else ``target/debug/blvm-node`` in the current
    directory or one above it."""
    env = os.environ.get("BLVM_NODE_BIN")
    if env:
        return Path(env)
    for d in [Path.cwd(), *Path.cwd().parents]:
        candidate = d / "target" / "debug" / "blvm-node"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("blvm-node not found: set BLVM_NODE_BIN or run from the repository "
                            "(target/debug/blvm-node, built with `cargo build -p blvm-node`)")


def sandbox_mode() -> str:
    """``strict`` as root on a host with mount namespaces, ``permissive``
    otherwise (what scripts/run-node.sh decides); ``$BLVM_TEST_SANDBOX``
    (``strict``, ``permissive``, ``off``) overrides."""
    env = os.environ.get("BLVM_TEST_SANDBOX")
    if env:
        return env
    if os.geteuid() != 0:
        return "permissive"
    ok = subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0 \
        if shutil.which("unshare") else False
    return "strict" if ok else "permissive"


def default_interpreter() -> str:
    """``/usr/bin/python3`` when present (under ``/usr``, visible to every
    sandboxed module), else this interpreter."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _copy_package(pkg, dest: Path) -> None:
    src = Path(pkg.__file__).parent
    shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)


def vendor_sdk(dest: Path) -> None:
    """Copies ``blvm_module`` and ``msgpack`` into ``dest`` (a module's
    ``vendor/``), as ``pip install --target`` would."""
    import msgpack

    dest.mkdir(parents=True, exist_ok=True)
    _copy_package(blvm_module, dest)
    _copy_package(msgpack, dest)


class BlvmNode:
    """One node process. Use :meth:`start` (the fixture does), then
    :meth:`install_module`, :meth:`load_module`, :meth:`rpc`, :meth:`mine` …"""

    def __init__(self, root: Path, binary: Path | None = None, sandbox: str | None = None):
        self.root = Path(root)
        self.binary = binary or find_node_binary()
        self.sandbox = sandbox or sandbox_mode()
        self.datadir = self.root / "data"
        self.modules_dir = self.root / "modules"
        self.log_path = self.root / "node.log"
        self.config_path = self.root / "blvm.toml"
        self.read_only_by_module: dict[str, list[str]] = {}
        self.extra_config = ""
        #: The ``[supervision]`` keys: a handshake deadline of 60 s (the
        #: node's is 10 s), as a Python module under the sandbox's CPU quota
        #: on a loaded test machine can take longer than 10 s to start.
        self.supervision: dict[str, int] = {"handshake_timeout": 60}
        self.process: subprocess.Popen | None = None
        self.rpc_url = ""
        self._auth = ""
        self.recorded: set[str] = set()
        self.unchecked: set[str] = set()

    # --- process ----------------------------------------------------------

    def _config(self) -> str:
        lines = ['network = "regtest"', "rpcport = 0", "block_interval = 0", 'log = "info"', ""]
        lines.append("[sandbox]")
        if self.sandbox == "off":
            lines.append("enabled = false")
        else:
            lines.append(f'mode = "{self.sandbox}"')
        if self.supervision:
            lines += ["", "[supervision]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in self.supervision.items()]
        if self.read_only_by_module:
            lines += ["", "[sandbox.read_only_by_module]"]
            lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in self.read_only_by_module.items()]
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self) -> "BlvmNode":
        """Starts the node and waits for its JSON-RPC server."""
        self.modules_dir.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and self.sandbox != "strict":
            # Without mount namespaces modules reach their files through the
            # host's directories as their own uids (scripts/run-node.sh).
            for d in [self.root, *self.root.parents]:
                if d.exists() and not os.stat(d).st_mode & 0o001:
                    os.chmod(d, os.stat(d).st_mode | 0o011)
        self.config_path.write_text(self._config())
        log = open(self.log_path, "ab")
        env = dict(os.environ, NO_COLOR="1", RUST_LOG_STYLE="never")
        self.process = subprocess.Popen(
            [str(self.binary), "--conf", str(self.config_path), "--datadir", str(self.datadir),
             "--modules-dir", str(self.modules_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        started = self.wait_for_log(r"blvm-node started .*rpc=(\S+)", what="the node's start")
        self.rpc_url = "http://" + started.group(1)
        cookie = (self.datadir / ".cookie").read_text().strip()
        self._auth = "Basic " + base64.b64encode(cookie.encode()).decode()
        return self

    def stop(self, timeout: float = DEADLINE) -> int:
        """Stops the node (SIGTERM, then SIGKILL past ``timeout``); returns its status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    @property
    def cookie_url(self) -> str:
        """The JSON-RPC URL with the cookie's credentials, for ``AuthServiceProxy``."""
        user_pass = base64.b64decode(self._auth.split()[1]).decode()
        return self.rpc_url.replace("http://", f"http://{user_pass}@")

    # --- log --------------------------------------------------------------

    def log_text(self) -> str:
        """The node's log so far (ANSI colours removed)."""
        try:
            return _ANSI.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = DEADLINE, what: str | None = None):
        """Waits until a log line matches ``pattern``; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                m = rx.search(line)
                if m:
                    return m
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the node exited ({self.process.returncode}) before {what or pattern}:\n"
                                   + self.log_text()[-4000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log line matching {pattern!r} within {timeout} s:\n"
                                   + self.log_text()[-4000:])
            time.sleep(0.05)

    def module_logs(self, name: str) -> list[str]:
        """The node's log lines about module ``name``: its log frames, its
        stdout and stderr, and the node's own lines naming it."""
        rx = re.compile(rf"\bmodule(?:_name)?=\"?{re.escape(name)}\"?(\s|$)")
        return [line for line in self.log_text().splitlines() if rx.search(line) and MARK not in line]

    def frame_reports(self, name: str | None = None) -> list[tuple[str, str, dict]]:
        """The frame recorder's reports: (module, kind, value)."""
        out = []
        rx = re.compile(rf"{MARK} (\w+) ([A-Za-z0-9+/=]+)")
        who = re.compile(r"\bmodule=\"?([A-Za-z0-9_.-]+)\"?")
        for line in self.log_text().splitlines():
            m, w = rx.search(line), who.search(line)
            if m and w and (name is None or w.group(1) == name):
                out.append((w.group(1), m.group(1), json.loads(base64.b64decode(m.group(2)))))
        return out

    def frame_summaries(self, name: str) -> list[dict]:
        """The recorder's summary of each spawn of ``name`` that ended: frames, bytes, problems, exit status."""
        return [value for _, kind, value in self.frame_reports(name) if kind == "summary"]

    def frame_problems(self) -> list[str]:
        """Every problem the recorder found in a checked module's frames."""
        return [f"module {mod}: {value['problem']}" for mod, kind, value in self.frame_reports()
                if kind == "problem" and mod not in self.unchecked]

    # --- JSON-RPC ---------------------------------------------------------

    def rpc(self, method: str, *params: Any, timeout: float = DEADLINE) -> Any:
        """Calls a JSON-RPC method with the node's cookie; raises :class:`RpcError`."""
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(self.rpc_url, body, {"Content-Type": "application/json",
                                                          "Authorization": self._auth})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as e:
            answer = json.loads(e.read() or b"{}")
            if not answer.get("error"):
                raise
        if answer.get("error"):
            raise RpcError(answer["error"].get("code"), answer["error"].get("message"))
        return answer.get("result")

    def mine(self, n: int = 1, address: str = OP_TRUE_ADDRESS) -> list[str]:
        """Mines ``n`` blocks to ``address`` (default P2WSH(OP_TRUE)); their hashes."""
        return self.rpc("generatetoaddress", n, address)

    def submit_tx(self, tx_hex: str) -> str:
        """``sendrawtransaction``: the txid."""
        return self.rpc("sendrawtransaction", tx_hex)

    def wait_until(self, predicate, timeout: float = DEADLINE, what: str = "a condition"):
        """Polls ``predicate()`` until it returns a truthy value (returned), or fails at the deadline."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except (RpcError, KeyError, IndexError) as e:
                last = e
            time.sleep(0.05)
        raise TimeoutError(f"{what} did not happen within {timeout} s (last error: {last})")

    # --- modules ----------------------------------------------------------

    def install_module(self, source: Path | str, name: str | None = None, *, interpreter: str | None = None,
                       capabilities: list[str] | None = None, vendor: bool = True, record_frames: bool = True,
                       check_frames: bool = True, manifest_extra: str = "") -> Path:
        """Copies a script module's folder into the modules dir as ``name``.

        Rewrites the entry point's ``#!`` line to ``interpreter`` (default
        :func:`default_interpreter`), writes ``module.toml`` when
        ``capabilities`` is given (else keeps the folder's, renamed),
        vendors the SDK and msgpack into ``vendor/`` (``vendor``), and puts
        the frame recorder in front of the entry point (``record_frames``;
        ``check_frames=False`` records without failing the test).
        An interpreter outside ``/usr`` is allowed through
        ``[sandbox.read_only_by_module]``, which needs installing before :meth:`start`.
        """
        source = Path(source)
        name = name or source.name
        dest = self.modules_dir / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "vendor"))
        manifest_path = dest / "module.toml"
        if capabilities is not None or not manifest_path.exists():
            caps = ", ".join(json.dumps(c) for c in (capabilities or []))
            manifest = (f'name = "{name}"\nversion = "1.0.0"\nentry_point = "main.py"\n'
                        f"capabilities = [{caps}]\n")
        else:
            manifest = re.sub(r'(?m)^name\s*=\s*"[^"]*"', f'name = "{name}"', manifest_path.read_text())
        entry = re.search(r'(?m)^entry_point\s*=\s*"([^"]+)"', manifest).group(1)
        interpreter = interpreter or default_interpreter()
        script = dest / entry
        body = script.read_text()
        if body.startswith("#!"):
            body = body.split("\n", 1)[1] if "\n" in body else ""
        script.write_text(f"#!{interpreter}\n{body}")
        script.chmod(0o755)
        if vendor:
            vendor_sdk(dest / "vendor")
        if record_frames:
            here = Path(__file__).parent
            check = dest / "_blvm_check"
            check.mkdir()
            _copy_package(blvm_module, check)
            recorder = dest / "blvm_frame_recorder.py"
            recorder.write_text(f"#!{interpreter}\n" + (here / "recorder.py").read_text())
            recorder.chmod(0o755)
            (dest / "blvm_frame_recorder.json").write_text(json.dumps({"entry": entry}))
            manifest = re.sub(r'(?m)^entry_point\s*=\s*"[^"]+"', 'entry_point = "blvm_frame_recorder.py"', manifest)
            self.recorded.add(name)
        if not check_frames:
            self.unchecked.add(name)
        manifest_path.write_text(manifest + manifest_extra)
        if not interpreter.startswith("/usr/"):
            prefix = sys.base_prefix if interpreter == sys.executable else str(Path(interpreter).parents[1])
            paths = sorted({prefix, sys.prefix})
            if self.process is not None and self.read_only_by_module.get(name) != paths:
                raise RuntimeError(f"{interpreter} is outside /usr: install {name} before the node starts, so that "
                                   "[sandbox.read_only_by_module] can allow it")
            self.read_only_by_module[name] = paths
        return dest

    def load_module(self, name: str) -> Any:
        """``loadmodule``: returns when the module completed its handshake."""
        return self.rpc("loadmodule", name)

    def unload_module(self, name: str) -> Any:
        """``unloadmodule``: the node sends ``shutdown`` and waits for the exit."""
        return self.rpc("unloadmodule", name)

    def module_status(self, name: str) -> dict:
        """``getmodulestatus``."""
        return self.rpc("getmodulestatus", name)

    def wait_rpc_method(self, method: str, timeout: float = DEADLINE) -> None:
        """Waits until ``help`` lists a module's JSON-RPC method."""
        self.wait_until(lambda: method in [line.split(" ")[0] for line in self.rpc("help").split("\n")],
                        timeout, f"`{method}` in help")
