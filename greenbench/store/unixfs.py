"""UnixFS v1: files as IPFS tools store them (build a file DAG the way Kubo does; read files and directories).

Terms:
    UnixFS: the file-system layer of IPFS. A file or directory is a DAG of dag-pb blocks whose ``Data``
        field holds a protobuf ``Data { Type = 1; Data = 2; filesize = 3; repeated blocksizes = 4;
        hashType = 5; fanout = 6; mode = 7; mtime = 8 }`` (https://specs.ipfs.tech/unixfs/). Types:
        Raw 0, Directory 1, File 2, Metadata 3, Symlink 4, HAMTShard 5.
    leaf: a chunk of the file's bytes. With *raw leaves* (Kubo's default for CIDv1) a leaf is a raw
        block (codec 0x55); otherwise it is a dag-pb File node carrying the chunk in ``Data``.
    balanced layout: how Kubo (boxo ``importer/balanced``) and helia (``ipfs-unixfs-importer``) arrange
        leaves: the file is cut into fixed-size chunks, which become the children of File nodes of at
        most ``max_links`` links, which become the children of the next level up, and so on until one
        node remains: the root. Each File node lists its children's byte counts in ``blocksizes`` and
        their sum in ``filesize``; each link carries ``Name`` "" and ``Tsize`` (the bytes of the
        child's whole sub-DAG). A one-chunk file is the leaf itself.
    Kubo's defaults for ``ipfs add --cid-version=1``: 262,144-byte (256 KiB) chunks, raw leaves, at most
        174 links per node, CIDv1, sha2-256 (:data:`CHUNK_SIZE`, :data:`MAX_LINKS`). Files built with
        the same settings get the same CID in greenbench, Kubo and helia.
    HAMTShard: a directory too large for one block, spread over a hash-array-mapped trie of shard nodes;
        each link's name is two hex digits (the bucket) followed by the entry's name, or the two digits
        alone for a link to a sub-shard.

Every function here is pure: blocks come in through a ``get(cid) -> bytes`` callable (which is
expected to verify them against their CIDs), so the same code serves the local store and tests.
Malformed UnixFS raises :class:`~greenbench.errors.StoreError` naming the block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from greenbench.errors import StoreError, VerificationError
from greenbench.store import dagpb
from greenbench.store import multiformats as mf
from greenbench.store.blockfiles import BlockNotFoundError
from greenbench.store.cid import DAG_PB, IDENTITY, RAW, SHA2_256, CID

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "RAW_TYPE",
    "DIRECTORY",
    "FILE",
    "METADATA",
    "SYMLINK",
    "HAMT_SHARD",
    "UnixFSData",
    "decode_data",
    "encode_data",
    "FileBuilder",
    "build_file",
    "leaf_cid",
    "node_kind",
    "iter_file",
    "file_size",
    "list_directory",
    "lookup",
]

#: Kubo's default chunk size for ``ipfs add`` (boxo ``chunk.DefaultBlockSize``).
CHUNK_SIZE = 256 * 1024
#: Kubo's default maximum links per File node (boxo ``helpers.DefaultLinksPerBlock``).
MAX_LINKS = 174

RAW_TYPE, DIRECTORY, FILE, METADATA, SYMLINK, HAMT_SHARD = range(6)
_TYPE_NAMES = {0: "raw", 1: "directory", 2: "file", 3: "metadata", 4: "symlink", 5: "hamt-sharded directory"}

Get = Callable[[CID], bytes]


@dataclass(frozen=True)
class UnixFSData:
    """The decoded ``Data`` field of a UnixFS dag-pb node."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)
    hash_type: int | None = None
    fanout: int | None = None

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")


def _key(number: int, wire: int) -> bytes:
    return mf.encode_varint(number << 3 | wire)


def encode_data(d: UnixFSData) -> bytes:
    """Protobuf bytes of ``d`` in field order, as go-unixfs and js ipfs-unixfs write them (blocksizes
    unpacked, one field each)."""
    out = bytearray(_key(1, 0) + mf.encode_varint(d.type))
    if d.data is not None:
        out += _key(2, 2) + mf.encode_varint(len(d.data)) + d.data
    if d.filesize is not None:
        out += _key(3, 0) + mf.encode_varint(d.filesize)
    for size in d.blocksizes:
        out += _key(4, 0) + mf.encode_varint(size)
    if d.hash_type is not None:
        out += _key(5, 0) + mf.encode_varint(d.hash_type)
    if d.fanout is not None:
        out += _key(6, 0) + mf.encode_varint(d.fanout)
    return bytes(out)


def decode_data(raw: bytes, where: object = "block") -> UnixFSData:
    """Decode a UnixFS ``Data`` message (mode and mtime are read and ignored).

    Raises:
        StoreError: not a UnixFS Data message.
    """
    kind = payload = filesize = hash_type = fanout = None
    sizes: list[int] = []
    pos = 0
    try:
        while pos < len(raw):
            key, pos = mf.decode_varint(raw, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = mf.decode_varint(raw, pos)
            elif wire == 2:
                length, pos = mf.decode_varint(raw, pos)
                if pos + length > len(raw):
                    raise StoreError("a field runs past the end")
                value, pos = raw[pos : pos + length], pos + length
            elif wire == 5:
                value, pos = raw[pos : pos + 4], pos + 4
            elif wire == 1:
                value, pos = raw[pos : pos + 8], pos + 8
            else:
                raise StoreError(f"wire type {wire}")
            if pos > len(raw):
                raise StoreError("a field runs past the end")
            if number == 1 and wire == 0:
                kind = value
            elif number == 2 and wire == 2:
                payload = bytes(value)
            elif number == 3 and wire == 0:
                filesize = value
            elif number == 4 and wire == 0:
                sizes.append(value)
            elif number == 4 and wire == 2:  # packed, as some encoders write repeated varints
                inner = 0
                while inner < len(value):
                    size, inner = mf.decode_varint(value, inner)
                    sizes.append(size)
            elif number == 5 and wire == 0:
                hash_type = value
            elif number == 6 and wire == 0:
                fanout = value
            elif number in (7, 8):
                pass  # mode, mtime: metadata greenbench does not use
            else:
                raise StoreError(f"unexpected field {number}")
    except StoreError as exc:
        raise StoreError(f"{where} is not UnixFS: its Data field is malformed ({exc.message})") from None
    if kind is None or kind not in _TYPE_NAMES:
        raise StoreError(f"{where} is not UnixFS: {'no' if kind is None else 'unknown'} Type in its Data field")
    return UnixFSData(kind, payload, filesize, tuple(sizes), hash_type, fanout)


# --------------------------------------------------------------------------- building


def _cid(data: bytes, codec: int, version: int) -> CID:
    return CID(version, codec, SHA2_256, hashlib.sha256(data).digest())


def leaf_cid(chunk: bytes | memoryview) -> CID:
    """The CID of a raw leaf (a raw-codec CIDv1): what a chunk of at most :data:`CHUNK_SIZE` bytes,
    or a whole file that small, is stored under."""
    return CID(1, RAW, SHA2_256, hashlib.sha256(chunk).digest())


@dataclass
class _Child:
    cid: CID
    filesize: int  # file bytes under it
    tsize: int  # block bytes under it (itself included)


class FileBuilder:
    """Builds the balanced File DAG over leaves given in order, keeping one pending list per level.

    Give it each leaf with :meth:`add_leaf`; it returns the File nodes that became complete (a level
    reached ``max_links`` children), as ``(cid, block bytes)``. :meth:`finish` closes the partial
    levels bottom up and returns the root CID and the last nodes. The result equals boxo's
    ``balanced.Layout`` (fill a node with ``max_links`` children, then make it the first child of a new
    root one level up, and fill that root's remaining children to the same depth): filling greedily
    from the left at every level is the same tree. Memory: at most ``max_links`` children per level.

    Args:
        max_links: children per File node (Kubo: 174).
        cid_version: of the File nodes (1: dag-pb CIDv1; 0: CIDv0, as ``ipfs add`` without
            ``--cid-version``).
    """

    def __init__(self, max_links: int = MAX_LINKS, cid_version: int = 1):
        if max_links < 2:
            raise StoreError(f"a File node needs room for at least 2 links, got max_links={max_links}")
        self.max_links = max_links
        self.cid_version = cid_version
        self.levels: list[list[_Child]] = [[]]
        self.leaves = 0

    def add_leaf(self, cid: CID, size: int, tsize: int | None = None) -> list[tuple[CID, bytes]]:
        """Add the next leaf (``size`` file bytes; ``tsize`` its block size, default ``size``)."""
        self.levels[0].append(_Child(cid, size, size if tsize is None else tsize))
        self.leaves += 1
        made: list[tuple[CID, bytes]] = []
        level = 0
        while len(self.levels[level]) == self.max_links:
            made.append(self._close(level))
            level += 1
        return made

    def _close(self, level: int) -> tuple[CID, bytes]:
        children = self.levels[level]
        data = encode_data(
            UnixFSData(FILE, filesize=sum(c.filesize for c in children), blocksizes=tuple(c.filesize for c in children))
        )
        block = dagpb.encode(dagpb.PBNode(tuple(dagpb.PBLink(c.cid, "", c.tsize) for c in children), data))
        cid = _cid(block, DAG_PB, self.cid_version)
        parent = _Child(cid, sum(c.filesize for c in children), len(block) + sum(c.tsize for c in children))
        self.levels[level] = []
        if level + 1 == len(self.levels):
            self.levels.append([])
        self.levels[level + 1].append(parent)
        return cid, block

    def finish(self) -> tuple[CID, list[tuple[CID, bytes]]]:
        """Close the partial levels; returns the root CID and the File nodes made doing so.

        Raises:
            StoreError: no leaf was added (an empty file is one empty leaf: add it).
        """
        if self.leaves == 0:
            raise StoreError("a file DAG needs at least one leaf (an empty file is one empty leaf)")
        made: list[tuple[CID, bytes]] = []
        level = 0
        while True:
            pending = self.levels[level]
            higher = any(self.levels[level + 1 :])
            if len(pending) == 1 and not higher:
                return pending[0].cid, made
            if pending:
                made.append(self._close(level))
            level += 1


def build_file(
    data: bytes | memoryview,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
    raw_leaves: bool = True,
    cid_version: int = 1,
) -> tuple[CID, list[tuple[CID, bytes]]]:
    """The UnixFS DAG of ``data`` in memory: ``(root CID, [(cid, block), ...])``, leaves and nodes in the
    order they are made. The defaults are Kubo's ``ipfs add --cid-version=1``; ``raw_leaves=False,
    cid_version=0`` is plain ``ipfs add`` (leaves are dag-pb File nodes). Used for small inputs and to
    check the streaming writer against published CIDs; ``LocalStore.put_file`` streams instead.
    """
    view = memoryview(data)
    builder = FileBuilder(max_links, cid_version)
    blocks: list[tuple[CID, bytes]] = []
    for start in range(0, max(len(view), 1), chunk_size):
        chunk = bytes(view[start : start + chunk_size])
        if raw_leaves:
            cid, block = _cid(chunk, RAW, 1), chunk
        else:
            block = dagpb.encode(dagpb.PBNode((), encode_data(UnixFSData(FILE, data=chunk, filesize=len(chunk)))))
            cid = _cid(block, DAG_PB, cid_version)
        blocks.append((cid, block))
        blocks.extend(builder.add_leaf(cid, len(chunk), len(block)))
    root, last = builder.finish()
    return root, blocks + last


# --------------------------------------------------------------------------- reading


def node_kind(cid: CID, block: bytes) -> str:
    """``file`` (raw block, or a UnixFS File/Raw node), ``directory``, ``hamt`` (sharded directory),
    ``symlink``, ``unixfs-other`` (Metadata), ``dag-pb`` (dag-pb that is not UnixFS), or the codec name."""
    if cid.codec == RAW:
        return "file"
    if cid.codec != DAG_PB:
        return cid.codec_name
    node = dagpb.decode(block)
    if node.data is None:
        return "dag-pb"
    try:
        d = decode_data(node.data, cid)
    except StoreError:
        return "dag-pb"
    return {RAW_TYPE: "file", FILE: "file", DIRECTORY: "directory", HAMT_SHARD: "hamt", SYMLINK: "symlink"}.get(
        d.type, "unixfs-other"
    )


def _file_node(cid: CID, block: bytes) -> tuple[dagpb.PBNode, UnixFSData]:
    node = dagpb.decode(block)
    if node.data is None:
        raise StoreError(f"{cid} is dag-pb but not a UnixFS file (no Data field)")
    d = decode_data(node.data, cid)
    if d.type not in (FILE, RAW_TYPE):
        raise StoreError(
            f"{cid} is a UnixFS {d.type_name}, not a file",
            "read one of its entries (/ipfs/CID/NAME on the gateway), or use --block for the node itself",
        )
    if node.links and len(d.blocksizes) != len(node.links):
        raise StoreError(f"UnixFS file node {cid} has {len(node.links)} links but {len(d.blocksizes)} blocksizes")
    expected = len(d.data or b"") + sum(d.blocksizes)
    if d.filesize is not None and d.filesize != expected and node.links:
        raise StoreError(f"UnixFS file node {cid} says filesize {d.filesize}, its parts add up to {expected}")
    return node, d


def file_size(cid: CID, block: bytes) -> int:
    """Bytes of the file rooted at ``cid`` (from its root block alone)."""
    if cid.codec == RAW:
        return len(block)
    _, d = _file_node(cid, block)
    return d.filesize if d.filesize is not None else len(d.data or b"") + sum(d.blocksizes)


def iter_file(get: Get, cid: CID, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes of the UnixFS file rooted at ``cid`` (or of a raw block), from ``start`` up to ``end``
    (exclusive; None: to the end), reading only the blocks that hold them.

    Every node is checked as it is read: each child must hold the bytes its parent's ``blocksizes``
    say, so a truncated or padded DAG is caught, not passed on.

    Raises:
        StoreError: a malformed or non-file node.
        greenbench.errors.VerificationError: the parts do not add up to the sizes their parents record.
    """
    yield from _iter_range(get, cid, get(cid), start, end, None)


def _iter_range(get: Get, cid: CID, block: bytes, start: int, end: int | None, expect: int | None) -> Iterator[bytes]:
    if cid.codec == RAW:
        if expect is not None and len(block) != expect:
            raise VerificationError(f"file block {cid} holds {len(block)} bytes, its parent says {expect}")
        stop = len(block) if end is None else min(end, len(block))
        if start < stop:
            yield block[start:stop]
        return
    node, d = _file_node(cid, block)
    size = len(d.data or b"") + sum(d.blocksizes)
    if expect is not None and size != expect:
        raise VerificationError(f"UnixFS node {cid} holds {size} bytes, its parent says {expect}")
    stop = size if end is None else min(end, size)
    offset = 0
    if d.data:
        n = len(d.data)
        if start < n and offset < stop:
            yield d.data[max(start, 0) : min(stop, n)]
        offset = n
    for link, child_size in zip(node.links, d.blocksizes):
        lo, hi = offset, offset + child_size
        offset = hi
        if child_size == 0 or hi <= start:
            continue
        if lo >= stop:
            break
        yield from _iter_range(get, link.hash, get(link.hash), max(0, start - lo), stop - lo, child_size)


def file_blocks(
    get: Get, cid: CID, start: int = 0, end: int | None = None, missing_ok: bool = False
) -> Iterator[CID]:
    """The CIDs of the blocks needed to read bytes ``start:end`` of the file at ``cid``, depth first
    (the root first). Only dag-pb nodes are read; raw leaves are named, not read. With ``missing_ok`` a
    node that is not there is named (whoever reads it finds it missing) and not gone into."""
    yield cid
    if cid.codec == RAW:
        return
    try:
        block = get(cid)
    except BlockNotFoundError:
        if missing_ok:
            return
        raise
    node, d = _file_node(cid, block)
    offset = len(d.data or b"")
    for link, child_size in zip(node.links, d.blocksizes):
        lo, hi = offset, offset + child_size
        offset = hi
        if child_size == 0 or hi <= start:
            continue
        if end is not None and lo >= end:
            break
        if link.hash.codec == RAW or link.hash.hash_code == IDENTITY:
            yield link.hash
        else:
            yield from file_blocks(get, link.hash, max(0, start - lo), None if end is None else end - lo, missing_ok)


def list_directory(get: Get, cid: CID, block: bytes | None = None) -> Iterator[tuple[str, CID, list[CID]]]:
    """Entries of a UnixFS directory (plain or HAMT-sharded): ``(name, target, shard nodes on the way)``.

    For a plain directory the shard list is empty; for a HAMT it names the sub-shard blocks between
    the directory's root and the entry (the blocks a client needs to verify the lookup).
    """
    block = get(cid) if block is None else block
    node = dagpb.decode(block)
    d = decode_data(node.data or b"", cid)
    if d.type == DIRECTORY:
        for link in node.links:
            yield link.name or "", link.hash, []
        return
    if d.type != HAMT_SHARD:
        raise StoreError(f"{cid} is a UnixFS {d.type_name}, not a directory")
    width = len(f"{max((d.fanout or 256) - 1, 1):X}")
    for link in node.links:
        name = link.name or ""
        if len(name) < width:
            raise StoreError(f"HAMT shard {cid} has a link named {name!r}, shorter than its {width}-digit bucket prefix")
        if len(name) == width:  # a sub-shard
            for entry, target, shards in list_directory(get, link.hash):
                yield entry, target, [link.hash, *shards]
        else:
            yield name[width:], link.hash, []


def lookup(get: Get, cid: CID, name: str) -> tuple[CID, list[CID]] | None:
    """The entry ``name`` of the directory at ``cid`` and the HAMT shard blocks passed on the way, or None."""
    for entry, target, shards in list_directory(get, cid):
        if entry == name:
            return target, shards
    return None
