"""Blocks and transactions travel as their consensus bytes. Parse them with
python-bitcoinlib when it is installed (:func:`parse_block`,
:func:`parse_tx`); :func:`tx_weight`, :func:`tx_vsize` and :func:`txid` need
only the standard library."""
from __future__ import annotations

import hashlib


def _bitcoinlib():
    try:
        import bitcoin.core  # python-bitcoinlib
    except ImportError as e:
        raise ImportError("parse_block/parse_tx need python-bitcoinlib: pip install python-bitcoinlib "
                          "(or blvm-module[bitcoin])") from e
    return bitcoin.core


def parse_block(raw: bytes):
    """A ``bitcoin.core.CBlock`` (python-bitcoinlib) from consensus bytes."""
    return _bitcoinlib().CBlock.deserialize(raw)


def parse_tx(raw: bytes):
    """A ``bitcoin.core.CTransaction`` (python-bitcoinlib) from consensus bytes."""
    return _bitcoinlib().CTransaction.deserialize(raw)


def _varint(raw: bytes, i: int) -> tuple[int, int]:
    b = raw[i]
    if b < 0xFD:
        return b, i + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[b]
    return int.from_bytes(raw[i + 1:i + 1 + size], "little"), i + 1 + size


def _split(raw: bytes) -> tuple[bytes, int]:
    """The transaction without witness data, and the witness part's length."""
    segwit = len(raw) > 5 and raw[4] == 0 and raw[5] != 0
    i = 6 if segwit else 4
    start_io = i
    n_in, i = _varint(raw, i)
    for _ in range(n_in):
        i += 36
        n, i = _varint(raw, i)
        i += n + 4
    n_out, i = _varint(raw, i)
    for _ in range(n_out):
        i += 8
        n, i = _varint(raw, i)
        i += n
    end_io = i
    if segwit:
        for _ in range(n_in):
            items, i = _varint(raw, i)
            for _ in range(items):
                n, i = _varint(raw, i)
                i += n
    if i + 4 != len(raw):
        raise ValueError("not one transaction")
    stripped = raw[:4] + raw[start_io:end_io] + raw[i:i + 4]
    return stripped, len(raw) - len(stripped)


def tx_weight(raw: bytes) -> int:
    """BIP141 weight: base size × 3 + total size."""
    stripped, _ = _split(raw)
    return len(stripped) * 3 + len(raw)


def tx_vsize(raw: bytes) -> int:
    """Virtual size: weight / 4, rounded up."""
    return (tx_weight(raw) + 3) // 4


def txid(raw: bytes) -> bytes:
    """The txid in internal byte order (double SHA-256 of the non-witness bytes)."""
    stripped, _ = _split(raw)
    return hashlib.sha256(hashlib.sha256(stripped).digest()).digest()
