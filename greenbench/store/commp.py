"""Filecoin piece commitments (CommP): the piece CID a Filecoin storage deal names.

Terms:
    Fr32 padding: Filecoin stores 254 bits of payload in every 32-byte field element, so each 127
        payload bytes (1016 bits) become 128 bytes: four 32-byte nodes, each holding the next 254 bits
        (little-endian bit order) with its top two bits zero.
    padded piece size: the smallest power of two, at least 128 bytes, whose unpadded capacity
        (``size * 127 / 128``) holds the payload; the payload is zero-filled up to that capacity.
    CommP: the root of a binary Merkle tree over the padded piece's 32-byte nodes, where a parent is
        ``sha256(left || right)`` with the two most significant bits of its last byte cleared
        (multihash ``sha2-256-trunc254-padded``, 0x1012).
    piece CID: CIDv1, codec ``fil-commitment-unsealed`` (0xf101), multihash 0x1012 of the root:
        ``baga6ea4seaq...`` in base32.

The payload is streamed in subtrees of 2**15 nodes (~1 MiB of payload), so memory stays small;
all-zero tail subtrees use precomputed roots instead of hashing.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

import numpy as np

from greenbench.errors import StoreError
from greenbench.fsutil import open_input, read_up_to
from greenbench.store.cid import CID, FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED

__all__ = ["commp", "commp_bytes", "padded_piece_size", "fr32_pad"]

NODE = 32
#: Subtree height processed per batch: 2**15 nodes = 1 MiB padded = 1,040,384 payload bytes.
_BATCH_LEVEL = 15
MIN_PADDED = 128
MAX_LEVEL = 60


def padded_piece_size(payload_size: int) -> int:
    """Padded piece size (bytes) for a payload of ``payload_size`` bytes."""
    size = MIN_PADDED
    while size * 127 // 128 < payload_size:
        size <<= 1
    return size


def fr32_pad(data: bytes) -> bytes:
    """Fr32-pad ``data`` (length a multiple of 127) into 128-byte quads of four 32-byte nodes."""
    if len(data) % 127:
        raise ValueError("fr32_pad needs a multiple of 127 bytes")
    n = len(data) // 127
    src = np.zeros((n, 128), dtype=np.uint16)
    src[:, :127] = np.frombuffer(data, dtype=np.uint8).reshape(n, 127)
    out = np.empty((n, 128), dtype=np.uint8)
    for i, (start, shift) in enumerate(((0, 0), (31, 6), (63, 4), (95, 2))):
        lo = src[:, start : start + 32]
        hi = src[:, start + 1 : start + 33]
        if shift:  # column 127 of src is the zero byte the last node reads past the quad
            node = ((lo >> shift) | (hi << (8 - shift))) & 0xFF
        else:
            node = lo
        node = node.astype(np.uint8)
        node[:, 31] &= 0x3F
        out[:, i * 32 : (i + 1) * 32] = node
    return out.tobytes()


def _zero_roots() -> list[bytes]:
    roots = [bytes(NODE)]
    for _ in range(MAX_LEVEL):
        roots.append(_parent(roots[-1] + roots[-1]))
    return roots


def _parent(pair: bytes) -> bytes:
    digest = bytearray(hashlib.sha256(pair).digest())
    digest[31] &= 0x3F
    return bytes(digest)


def _level_up(nodes: bytes) -> bytes:
    """Hash a level of nodes (an even count, as one bytes string) into the level above."""
    sha = hashlib.sha256
    view = memoryview(nodes)
    joined = b"".join([sha(view[i : i + 64]).digest() for i in range(0, len(nodes), 64)])
    arr = np.frombuffer(joined, dtype=np.uint8).reshape(-1, NODE).copy()
    arr[:, 31] &= 0x3F
    return arr.tobytes()


def _subtree_root(payload: bytes, level: int) -> bytes:
    """Root of a subtree of 2**level nodes over ``payload`` (zero-filled to its capacity)."""
    capacity = (1 << level) * NODE * 127 // 128
    if len(payload) < capacity:
        payload = payload + bytes(capacity - len(payload))
    nodes = fr32_pad(payload)
    for _ in range(level):
        nodes = _level_up(nodes)
    return nodes


_ZERO = _zero_roots()


def commp(source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO) -> tuple[CID, int]:
    """The piece CID and padded piece size of a file, a stream, or bytes.

    Raises:
        StoreError: the input cannot be read or is empty (an empty payload has no piece).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        import io

        return _commp_stream(io.BytesIO(bytes(source)), "<bytes>")
    if isinstance(source, (str, os.PathLike)):
        with open_input(source) as fh:
            return _commp_stream(fh, str(source))
    return _commp_stream(source, getattr(source, "name", "<stream>"))


def commp_bytes(data: bytes) -> tuple[CID, int]:
    """:func:`commp` of in-memory bytes."""
    return commp(data)




def _commp_stream(fh: BinaryIO, name: str, batch_level: int = _BATCH_LEVEL) -> tuple[CID, int]:
    batch_payload = (1 << batch_level) * NODE * 127 // 128
    first = read_up_to(fh, batch_payload, name)
    if not first:
        raise StoreError(f"{name} is empty: an empty payload has no piece commitment", "pass a non-empty file")
    if len(first) < batch_payload:
        padded = padded_piece_size(len(first))
        level = (padded // NODE).bit_length() - 1
        return _piece_cid(_subtree_root(first, level)), padded
    # Stream full batches; keep a stack of (level, root) subtree roots, merging equal levels.
    stack: list[tuple[int, bytes]] = []
    total = 0
    chunk = first
    while chunk:
        total += len(chunk)
        root = _subtree_root(chunk, batch_level)
        level = batch_level
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            root = _parent(left + root)
            level += 1
        stack.append((level, root))
        chunk = read_up_to(fh, batch_payload, name)
    padded = padded_piece_size(total)
    top = (padded // NODE).bit_length() - 1
    # Fold the stack from the right, filling each gap with all-zero subtrees.
    level, root = stack.pop()
    while stack or level < top:
        if stack and stack[-1][0] == level:
            _, left = stack.pop()
            root = _parent(left + root)
        else:
            root = _parent(root + _ZERO[level])
        level += 1
    return _piece_cid(root), padded


def _piece_cid(root: bytes) -> CID:
    return CID(1, FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED, root)
