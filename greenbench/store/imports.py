"""CAR import into the store (all or nothing, every block verified and decoded first) and DAG walks.

Terms:
    import: every block of a CAR (v1, or the inner v1 of a v2) is checked against its CID and, for the
        codecs greenbench reads (dag-pb, dag-cbor, dag-json), decoded, as it is read; the new ones go
        to a pack of their own, which becomes visible only when the whole CAR has been read (one index
        transaction). A CAR with one bad block imports nothing.
    expansion cap: ``max_bytes`` bounds the block bytes one import may add to the store (a small
        compressed upload must not fill the disk); going over it imports nothing.
    walk: the blocks reachable from some roots through dag-json, dag-cbor and dag-pb links, depth first
        in link order, each once (the order of a trustless gateway's ``order=dfs`` CAR).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

from greenbench.errors import StoreError, VerificationError
from greenbench.store import dagcbor, dagjson, dagpb
from greenbench.store.blockfiles import BlockNotFoundError
from greenbench.store.car import CarReader
from greenbench.store.cid import DAG_CBOR, DAG_JSON, DAG_PB, IDENTITY, CID

if TYPE_CHECKING:
    from greenbench.store.local import LocalStore

__all__ = ["ImportResult", "import_car", "links", "check_decodes", "IMPORT_BLOCK_LIMIT"]

#: Largest block accepted from elsewhere (``put_verified``, ``import_car``): the libp2p/bitswap limit.
IMPORT_BLOCK_LIMIT = 2 << 20


class ImportResult(list):
    """The roots of an imported CAR (a ``list[CID]``), with counts.

    Attributes:
        blocks: sections read from the CAR.
        new_blocks: blocks that were not in the store before.
        bytes: total block bytes read.
    """

    def __init__(self, roots: Iterable[CID], blocks: int, new_blocks: int, nbytes: int):
        super().__init__(roots)
        self.blocks = blocks
        self.new_blocks = new_blocks
        self.bytes = nbytes


def links(cid: CID, data: bytes) -> list[CID]:
    """The CIDs a block links to (dag-json, dag-cbor, dag-pb; none for other codecs)."""
    if cid.codec == DAG_JSON:
        return dagjson.links(dagjson.decode(data))
    if cid.codec == DAG_CBOR:
        return dagcbor.links(dagcbor.decode(data))
    if cid.codec == DAG_PB:
        return dagpb.links(data)
    return []


def check_decodes(cid: CID, data: bytes | bytearray | memoryview) -> None:
    """Raise StoreError when a dag-pb, dag-cbor or dag-json block does not decode (other codecs pass)."""
    if cid.codec == DAG_PB:
        dagpb.decode(data)
    elif cid.codec == DAG_CBOR:
        dagcbor.decode(bytes(data))
    elif cid.codec == DAG_JSON:
        dagjson.decode(bytes(data))


def import_car(
    store: "LocalStore",
    source: "str | os.PathLike | bytes | BinaryIO",
    max_bytes: int | None = None,
) -> ImportResult:
    """Import every block of a CAR, all or nothing (module docstring); see :meth:`LocalStore.import_car`."""
    store._ensure()
    seen: set[bytes] = set()
    blocks = nbytes = added = 0
    with store._writing_pack(direct=False, what="import blocks into") as pack:
        with CarReader(source) as reader:
            for section in reader:
                cid, data = section.cid, section.data
                blocks += 1
                nbytes += len(data)
                where = f"{reader.name}: block {cid} at byte offset {section.offset}"
                if len(data) > IMPORT_BLOCK_LIMIT:
                    raise StoreError(f"{where} is {len(data)} bytes, over the {IMPORT_BLOCK_LIMIT}-byte limit; nothing imported")
                if not cid.can_verify:
                    raise StoreError(f"{where} uses hash function {cid.hash_name}, which greenbench cannot verify; nothing imported")
                if not cid.verify(data):
                    raise VerificationError(
                        f"{where} does not match its CID; nothing imported",
                        "the CAR is corrupted or was tampered with; fetch it again from a source you trust",
                    )
                try:
                    check_decodes(cid, data)
                except StoreError as exc:
                    raise StoreError(f"{where} is not valid {cid.codec_name} ({exc.message}); nothing imported") from None
                mh = cid.multihash
                if cid.hash_code != IDENTITY and mh not in seen and not store._present(mh, len(data)):
                    added += len(data)
                    if max_bytes is not None and added > max_bytes:
                        raise StoreError(
                            f"{reader.name}: its new blocks exceed the {max_bytes}-byte import limit; nothing imported",
                            "raise the limit (--max-bytes) if this CAR is expected to be that large",
                        )
                    pack.append(mh, data)
                seen.add(mh)
            roots = list(reader.roots)
    return ImportResult(roots, blocks, pack.inserted, nbytes)


def walk(
    get: Callable[[CID], bytes],
    roots: Iterable[CID],
    missing: Callable[[CID, CID | None], Exception] | None = None,
    dups: bool = False,
) -> Iterator[tuple[CID, bytes]]:
    """``(cid, bytes)`` of the blocks reachable from ``roots``, depth first in link order, each once
    (every occurrence with ``dups``). Identity CIDs are not emitted (their data is inside the CID).

    Args:
        missing: builds the exception for a block that ``get`` cannot find, from ``(cid, parent)``.
    """
    seen: set[bytes] = set()
    stack: list[tuple[CID, CID | None]] = [(CID.decode(r), None) for r in reversed(list(roots))]
    while stack:
        cid, parent = stack.pop()
        if cid.hash_code == IDENTITY or (not dups and cid.multihash in seen):
            continue
        seen.add(cid.multihash)
        try:
            data = get(cid)
        except BlockNotFoundError:
            if parent is None or missing is None:
                raise
            raise missing(cid, parent) from None
        yield cid, data
        stack.extend((child, cid) for child in reversed(links(cid, data)))
