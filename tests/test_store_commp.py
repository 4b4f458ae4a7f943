"""Filecoin CommP: published zero-payload vectors, and an independent slow reference for random data."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from greenbench.errors import StoreError
from greenbench.store.commp import _commp_stream, commp, fr32_pad, padded_piece_size

VECTORS = [
    line.split(",")
    for line in (Path(__file__).parent / "data" / "filecoin-commp" / "zero.txt").read_text().split()
]


@pytest.mark.parametrize("size,padded,cid", VECTORS, ids=[v[0] for v in VECTORS])
def test_zero_vectors(size, padded, cid, tmp_path):
    path = tmp_path / "zeros"
    path.write_bytes(bytes(int(size)))
    piece, padded_size = commp(path)
    assert (str(piece), padded_size) == (cid, int(padded))
    assert str(piece).startswith("baga6ea4seaq")


def _reference(data: bytes) -> tuple[str, int]:
    """Slow, independent CommP: big-integer Fr32 and a naive list-of-nodes Merkle tree."""
    padded = 128
    while padded * 127 // 128 < len(data):
        padded *= 2
    data = data + bytes(padded * 127 // 128 - len(data))
    nodes = []
    for q in range(0, len(data), 127):
        x = int.from_bytes(data[q : q + 127], "little")
        for i in range(4):
            nodes.append(((x >> (254 * i)) & ((1 << 254) - 1)).to_bytes(32, "little"))
    while len(nodes) > 1:
        nxt = []
        for i in range(0, len(nodes), 2):
            d = bytearray(hashlib.sha256(nodes[i] + nodes[i + 1]).digest())
            d[31] &= 0x3F
            nxt.append(bytes(d))
        nodes = nxt
    from greenbench.store.cid import CID

    return str(CID(1, 0xF101, 0x1012, nodes[0])), padded


@pytest.mark.parametrize("size", [65, 127, 128, 1000, 4064, 4065, 70000])
def test_random_payload_matches_reference(size):
    data = os.urandom(size)
    cid, padded = commp(data)
    assert (str(cid), padded) == _reference(data)


@pytest.mark.parametrize("batch_level", [2, 3, 5, 8])
def test_streaming_batches_agree(batch_level):
    data = os.urandom(20000)
    assert _commp_stream(io.BytesIO(data), "x", batch_level=batch_level) == commp(data)


def test_fr32_layout():
    quad = fr32_pad(b"\xff" * 127)
    assert len(quad) == 128
    assert all(quad[i * 32 + 31] == 0x3F for i in range(4))
    assert quad.count(0xFF) == 4 * 31


def test_padded_sizes_and_errors(tmp_path):
    assert [padded_piece_size(n) for n in (1, 127, 128, 254, 255)] == [128, 128, 256, 256, 512]
    with pytest.raises(StoreError, match="empty"):
        commp(b"")
    with pytest.raises(StoreError, match="cannot read"):
        commp(tmp_path / "missing")
