"""Version negotiation fails at connect with a clear message, never at the
first call: against the real node (``unsupported_version``), and against a
fake node that welcomes a version this package does not speak."""
import asyncio
import os
import tempfile

import pytest

from blvm_module import PROTOCOL_VERSIONS, HandshakeError, ModuleIntegration, VersionMismatch
from blvm_module.frames import FrameDecoder, encode_frame

TOKEN = "00" * 32


def test_protocol_versions_constant():
    assert PROTOCOL_VERSIONS == (1,)


def test_a_hello_offering_only_an_unsupported_version_fails_at_connect(blvm_node):
    sock = str(blvm_node.datadir / "sockets" / "node.sock")

    async def go():
        with pytest.raises(VersionMismatch) as e:
            await ModuleIntegration.connect(sock, "nobody-0", "nobody", "1.0.0", TOKEN, protocol_versions=[99])
        assert e.value.code == "unsupported_version"
        assert "refused protocol versions [99]" in str(e.value) and "speaks versions [1]" in str(e.value)
        # Version 1 gets past negotiation: the next check refuses the token.
        with pytest.raises(HandshakeError) as e:
            await ModuleIntegration.connect(sock, "nobody-0", "nobody", "1.0.0", TOKEN)
        assert not isinstance(e.value, VersionMismatch) and e.value.code == "bad_token"

    asyncio.run(go())


def test_a_welcome_with_a_version_we_do_not_speak_fails_at_connect():
    async def go():
        path = os.path.join(tempfile.mkdtemp(prefix="blvm-fake-"), "s")
        hellos = []

        async def serve(reader, writer):
            hellos.extend(FrameDecoder().feed(await reader.read(65536)))
            writer.write(encode_frame({"type": "welcome", "protocol_version": 2, "node_version": "9",
                                       "capabilities": [], "config": {}, "data_dir": "/"}))
            await writer.drain()

        server = await asyncio.start_unix_server(serve, path)
        async with server:
            with pytest.raises(VersionMismatch, match="chose protocol version 2"):
                await ModuleIntegration.connect(path, "m-0", "m", "1", TOKEN)
        assert hellos[0]["protocol_versions"] == [1]

    asyncio.run(go())
