"""DAG-PB (0x70): the protobuf codec of IPFS UnixFS, decoded strictly and encoded canonically.

Terms:
    DAG-PB: ``PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }`` and
        ``PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }``,
        where ``Hash`` is a binary CID. The canonical encoding (https://ipld.io/specs/codecs/dag-pb/spec/)
        writes every link first, then ``Data``; inside a link ``Hash``, ``Name``, ``Tsize`` in that order.
    strict decoding: what the spec's reference decoders (go-codec-dagpb, js @ipld/dag-pb) accept and no
        more: only those fields, each with its wire type, in canonical order, no duplicates, every link
        with a ``Hash`` that is a CID, no bytes left over. A block that fails is not dag-pb: the store
        refuses it on put and import, so it can never break a CAR stream or a UnixFS read later.
    Tsize: the total bytes of the linked sub-DAG (its blocks' sizes added up), a hint for clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from greenbench.errors import StoreError
from greenbench.store import multiformats as mf
from greenbench.store.cid import CID

__all__ = ["PBLink", "PBNode", "decode", "encode", "links"]


@dataclass(frozen=True)
class PBLink:
    """One link of a dag-pb node; ``name`` and ``tsize`` None when absent (not the same as "" and 0)."""

    hash: CID
    name: str | None = None
    tsize: int | None = None


@dataclass(frozen=True)
class PBNode:
    """A decoded dag-pb block: its links in order and its ``Data`` bytes (None when absent)."""

    links: tuple[PBLink, ...] = field(default_factory=tuple)
    data: bytes | None = None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    start = pos
    while True:
        if pos >= len(data) or shift > 63:
            raise StoreError(f"bad DAG-PB: truncated or overlong varint at byte offset {start}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise StoreError(f"bad DAG-PB: varint at byte offset {start} exceeds 64 bits")
            return value, pos
        shift += 7


def _fields(data: bytes, what: str):
    """``(field number, wire type, value)`` of a protobuf message: bytes for wire type 2, int for 0."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise StoreError(f"bad DAG-PB: {what} field {number} runs past the end of its bytes")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        else:
            raise StoreError(f"bad DAG-PB: {what} field {number} has wire type {wire}, which DAG-PB never uses")


def _decode_link(data: bytes) -> PBLink:
    cid = name = tsize = None
    last = 0
    for number, wire, value in _fields(data, "link"):
        if number <= last:
            raise StoreError(f"bad DAG-PB: link field {number} is out of order or repeated (Hash, Name, Tsize expected)")
        last = number
        if number == 1 and wire == 2:
            try:
                cid = CID.decode(bytes(value))
            except StoreError as exc:
                raise StoreError(f"bad DAG-PB: a link's Hash is not a CID ({exc.message})") from None
        elif number == 2 and wire == 2:
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise StoreError("bad DAG-PB: a link's Name is not UTF-8") from None
        elif number == 3 and wire == 0:
            tsize = value
        else:
            raise StoreError(f"bad DAG-PB: unexpected link field {number} (wire type {wire})")
    if cid is None:
        raise StoreError("bad DAG-PB: a link has no Hash (every link must name a CID)")
    return PBLink(cid, name, tsize)


def decode(data: bytes | bytearray | memoryview) -> PBNode:
    """Decode a dag-pb block strictly (module docstring).

    Raises:
        StoreError: not a valid DAG-PB block; the message says what is wrong.
    """
    data = bytes(data)
    found: list[PBLink] = []
    payload: bytes | None = None
    for number, wire, value in _fields(data, "node"):
        if number == 2 and wire == 2:
            if payload is not None:
                raise StoreError("bad DAG-PB: a link after Data (links come first)")
            found.append(_decode_link(value))
        elif number == 1 and wire == 2:
            if payload is not None:
                raise StoreError("bad DAG-PB: Data appears twice")
            payload = bytes(value)
        else:
            raise StoreError(f"bad DAG-PB: unexpected node field {number} (wire type {wire}); only Links (2) and Data (1)")
    return PBNode(tuple(found), payload)


def _bytes_field(number: int, value: bytes) -> bytes:
    return mf.encode_varint(number << 3 | 2) + mf.encode_varint(len(value)) + value


def encode(node: PBNode) -> bytes:
    """The canonical bytes of ``node`` (links in the order given, then Data)."""
    out = bytearray()
    for link in node.links:
        body = _bytes_field(1, link.hash.to_bytes())
        if link.name is not None:
            body += _bytes_field(2, link.name.encode("utf-8"))
        if link.tsize is not None:
            body += b"\x18" + mf.encode_varint(link.tsize)
        out += _bytes_field(2, body)
    if node.data is not None:
        out += _bytes_field(1, node.data)
    return bytes(out)


def links(data: bytes | bytearray | memoryview) -> list[CID]:
    """The CIDs a dag-pb block links to, in order.

    Raises:
        StoreError: the block is not valid DAG-PB.
    """
    return [link.hash for link in decode(data).links]
