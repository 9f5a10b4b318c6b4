"""The blvm IPC protocol for the Python test module: framing and the
MessagePack subset it uses (docs/ipc-protocol.md, sections 3 and 4), with
the standard library only, so that the system's python3 runs it.

It is the sibling file `main.py` imports: a module whose folder was not
staged whole never gets past this import.
"""
import socket
import struct

MAX_FRAME = 16 * 1024 * 1024


def pack(value, out):
    if value is None:
        out += b"\xc0"
    elif value is True:
        out += b"\xc3"
    elif value is False:
        out += b"\xc2"
    elif isinstance(value, int):
        if 0 <= value < 0x80:
            out += bytes([value])
        elif value >= 0:
            out += b"\xcf" + struct.pack(">Q", value)
        elif value >= -32:
            out += struct.pack(">b", value)
        else:
            out += b"\xd3" + struct.pack(">q", value)
    elif isinstance(value, str):
        raw = value.encode()
        out += b"\xdb" + struct.pack(">I", len(raw)) + raw
    elif isinstance(value, (bytes, bytearray)):
        out += b"\xc6" + struct.pack(">I", len(value)) + bytes(value)
    elif isinstance(value, (list, tuple)):
        out += b"\xdd" + struct.pack(">I", len(value))
        for item in value:
            pack(item, out)
    elif isinstance(value, dict):
        out += b"\xdf" + struct.pack(">I", len(value))
        for key, item in value.items():
            pack(key, out)
            pack(item, out)
    else:
        raise TypeError(f"cannot encode {type(value)}")


def unpack(buf, at):
    """The value at `at` and where the next one starts."""
    m = buf[at]
    at += 1

    def take(n):
        return buf[at:at + n], at + n

    def sized(fmt):
        n = struct.calcsize(fmt)
        return struct.unpack(fmt, buf[at:at + n])[0], at + n

    if m < 0x80:
        return m, at
    if m >= 0xe0:
        return m - 0x100, at
    if 0x80 <= m <= 0x8f:
        return unpack_map(buf, at, m & 0x0f)
    if 0x90 <= m <= 0x9f:
        return unpack_array(buf, at, m & 0x0f)
    if 0xa0 <= m <= 0xbf:
        raw, at = take(m & 0x1f)
        return bytes(raw).decode(), at
    simple = {0xc0: None, 0xc2: False, 0xc3: True}
    if m in simple:
        return simple[m], at
    if m in (0xc4, 0xc5, 0xc6):
        n, at = sized({0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}[m])
        raw, at = take(n)
        return bytes(raw), at
    if m in (0xd9, 0xda, 0xdb):
        n, at = sized({0xd9: ">B", 0xda: ">H", 0xdb: ">I"}[m])
        raw, at = take(n)
        return bytes(raw).decode(), at
    numbers = {0xca: ">f", 0xcb: ">d", 0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q",
               0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
    if m in numbers:
        return sized(numbers[m])
    if m in (0xdc, 0xdd):
        n, at = sized(">H" if m == 0xdc else ">I")
        return unpack_array(buf, at, n)
    if m in (0xde, 0xdf):
        n, at = sized(">H" if m == 0xde else ">I")
        return unpack_map(buf, at, n)
    raise ValueError(f"unsupported MessagePack marker 0x{m:02x}")


def unpack_array(buf, at, n):
    items = []
    for _ in range(n):
        item, at = unpack(buf, at)
        items.append(item)
    return items, at


def unpack_map(buf, at, n):
    out = {}
    for _ in range(n):
        key, at = unpack(buf, at)
        out[key], at = unpack(buf, at)
    return out, at


class Connection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = bytearray()

    def send(self, frame):
        payload = bytearray()
        pack(frame, payload)
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if n > MAX_FRAME:
                    raise ConnectionError(f"frame of {n} bytes")
                if len(self.buf) >= 4 + n:
                    frame, _ = unpack(bytes(self.buf[4:4 + n]), 0)
                    del self.buf[:4 + n]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the node closed the connection")
            self.buf += chunk
