"""DAG-PB (0x70), read only: the links out of a dag-pb block, so DAGs imported from IPFS can be exported again.

Terms:
    DAG-PB: the protobuf codec of IPFS UnixFS: ``PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }``
        and ``PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }``,
        where ``Hash`` is a binary CID.
"""

from __future__ import annotations

from greenbench.errors import StoreError
from greenbench.store.cid import CID

__all__ = ["links"]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise StoreError(f"bad DAG-PB: truncated or overlong varint at byte offset {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise StoreError(f"bad DAG-PB: field {field} runs past the end of the block")
            yield field, data[pos : pos + length]
            pos += length
        elif wire == 0:
            value, pos = _varint(data, pos)
            yield field, value
        else:
            raise StoreError(f"bad DAG-PB: unexpected wire type {wire} for field {field}")


def links(data: bytes) -> list[CID]:
    """The CIDs a dag-pb block links to, in order.

    Raises:
        StoreError: the block is not valid protobuf or a link hash is not a CID.
    """
    found = []
    for field, value in _fields(bytes(data)):
        if field == 2 and isinstance(value, bytes):
            for sub, subvalue in _fields(value):
                if sub == 1 and isinstance(subvalue, bytes):
                    found.append(CID.decode(subvalue))
    return found
