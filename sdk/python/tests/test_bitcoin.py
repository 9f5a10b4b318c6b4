"""The standard-library transaction helpers (`blvm_module.bitcoin`)
against independent figures: real mainnet transactions' txids, and a
segwit transaction's sizes counted from its layout by hand."""
from blvm_module.bitcoin import tx_vsize, tx_weight, txid

from conftest import REPO, op_true_spend

BLOCKS = REPO / "crates" / "blvm-node" / "tests" / "data" / "blocks-000000-000438.dat"


def mainnet_block(height: int) -> bytes:
    """Block `height` of the checked-in blk*.dat-format file (magic, length, block)."""
    data = BLOCKS.read_bytes()
    i = 0
    for _ in range(height):
        i += 8 + int.from_bytes(data[i + 4:i + 8], "little")
    return data[i + 8:i + 8 + int.from_bytes(data[i + 4:i + 8], "little")]


def test_the_txids_and_sizes_of_block_170s_legacy_transactions():
    block = mainnet_block(170)
    assert block[80] == 2  # two transactions: the coinbase, then the first payment (275 bytes)
    coinbase, payment = block[81:-275], block[-275:]
    assert txid(payment)[::-1].hex() == "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    assert txid(coinbase)[::-1].hex() == "b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082"
    # No witness: weight is four times the size.
    assert tx_weight(payment) == 4 * 275 and tx_vsize(payment) == 275


def test_a_segwit_spend_counts_its_witness_at_a_quarter():
    raw = bytes.fromhex(op_true_spend("11" * 32, 0, 1000))
    # Without witness: version 4, 1 input (1 + 32 + 4 + 1 + 4), 1 output
    # (1 + 8 + 1 + 34, P2WSH), locktime 4 = 94 bytes; marker and flag 2
    # and the witness [OP_TRUE] 3 more.
    assert len(raw) == 94 + 5
    assert tx_weight(raw) == 94 * 4 + 5 and tx_vsize(raw) == 96
    # The txid leaves the witness out: the same spend with another witness
    # has the same txid.
    other = raw[:-7] + b"\x01\x01\x52" + raw[-4:]
    assert txid(other) == txid(raw) and tx_weight(other) == tx_weight(raw)
