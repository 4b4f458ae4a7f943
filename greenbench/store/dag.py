"""Choosing blocks out of a DAG: content paths and the trustless gateway's scopes.

Terms:
    content path: ``/ipfs/{cid}/a/b``: each segment names an entry of a UnixFS directory (plain or
        HAMT-sharded), or a key or list index of a dag-cbor/dag-json node whose value is (or leads, inside
        the same block, to) a link. The blocks passed on the way are the *path blocks*; the block the
        path ends at is the *terminal*.
    dag-scope: which blocks below the terminal a CAR carries (https://specs.ipfs.tech/http-gateways/
        trustless-gateway/#dag-scope-request-query-parameter): ``block`` the terminal only; ``entity``
        what a UnixFS file needs to be read whole (a directory's own node, or all its HAMT shards; the
        block itself for anything else); ``all`` everything reachable (the default).
    entity-bytes: ``from:to`` (inclusive, ``*`` for the end, negative counts from the end) limits an
        entity-scoped UnixFS file to the blocks holding those bytes. A range that selects nothing makes
        the request equivalent to ``dag-scope=block``; on anything but a file it is ignored.
    dups: whether a block that occurs more than once in the walk is sent every time (``y``) or once
        (``n``). Identity CIDs are never sent (their bytes are in the CID).

Everything here reads blocks through a ``get(cid) -> bytes`` callable that verifies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from greenbench.errors import StoreError
from greenbench.store import dagcbor, dagjson, dagpb, unixfs
from greenbench.store.blockfiles import BlockNotFoundError
from greenbench.store.cid import DAG_CBOR, DAG_JSON, DAG_PB, IDENTITY, RAW, CID
from greenbench.store.imports import links

__all__ = ["PathNotFoundError", "resolve", "parse_entity_bytes", "select", "SCOPES"]

SCOPES = ("block", "entity", "all")
Get = Callable[[CID], bytes]


class PathNotFoundError(StoreError):
    """A content path names something the DAG does not have (the gateway answers 404)."""


def resolve(get: Get, root: CID, segments: list[str]) -> tuple[list[CID], CID, list[CID]]:
    """Follow ``segments`` from ``root``; returns ``(path blocks, terminal, roots)``: the roots are the
    CIDs the path names, one per segment that crossed a link (``X-Ipfs-Roots``), the terminal last.

    Raises:
        PathNotFoundError: a segment names no entry, or the path ends inside a block rather than at a link.
    """
    path: list[CID] = []
    roots: list[CID] = [root]
    cid = root
    i = 0
    while i < len(segments):
        data = get(cid)
        path.append(cid)
        if cid.codec == DAG_PB:
            kind = unixfs.node_kind(cid, data)
            if kind not in ("directory", "hamt"):
                raise PathNotFoundError(f"{cid} is a UnixFS {kind}, not a directory: it has no entry {segments[i]!r}")
            found = unixfs.lookup(lambda c: data if c == cid else get(c), cid, segments[i])
            if found is None:
                raise PathNotFoundError(f"directory {cid} has no entry {segments[i]!r}")
            cid, shards = found
            path.extend(shards)
            roots.append(cid)
            i += 1
        elif cid.codec in (DAG_JSON, DAG_CBOR):
            value = dagjson.decode(data) if cid.codec == DAG_JSON else dagcbor.decode(data)
            while i < len(segments) and not isinstance(value, CID):
                seg = segments[i]
                if isinstance(value, dict) and seg in value:
                    value = value[seg]
                elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
                    value = value[int(seg)]
                else:
                    raise PathNotFoundError(f"{cid} has no field {seg!r} at {'/'.join(segments[: i + 1])}")
                i += 1
            if not isinstance(value, CID):
                raise PathNotFoundError(
                    f"the path {'/'.join(segments)} ends inside block {cid}, not at a link",
                    "ask for the block that holds it (/ipfs/CID of that block) and read the field there",
                )
            cid = value
            roots.append(cid)
        else:
            raise PathNotFoundError(f"{cid} is a {cid.codec_name} block: it has no entry {segments[i]!r}")
    return path, cid, roots


def parse_entity_bytes(text: str) -> tuple[int, int | None]:
    """``from:to`` -> ``(from, to or None for *)``, both possibly negative.

    Raises:
        StoreError: not two integers (or ``*`` for ``to``), or ``to`` before ``from`` when both count
            from the start.
    """
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start)
        last = None if end == "*" else int(end)
    except ValueError:
        raise StoreError(
            f"entity-bytes={text!r} is not from:to", "use integers (negative counts from the end), e.g. 0:1023 or -1024:*"
        ) from None
    if last is not None and first >= 0 and last >= 0 and last < first:
        raise StoreError(f"entity-bytes={text!r}: the range ends before it starts")
    return first, last


def _byte_window(size: int, first: int, last: int | None) -> tuple[int, int]:
    start = first if first >= 0 else max(0, size + first)
    stop = size if last is None else (last + 1 if last >= 0 else size + last + 1)
    return min(start, size), max(0, min(stop, size))


def _hamt_shards(get: Get, cid: CID) -> Iterator[CID]:
    """A HAMT-sharded directory's own shard nodes, depth first (not the entries they point to)."""
    yield cid
    node = dagpb.decode(get(cid))
    d = unixfs.decode_data(node.data or b"", cid)
    width = len(f"{max((d.fanout or 256) - 1, 1):X}")
    for link in node.links:
        if len(link.name or "") == width:
            yield from _hamt_shards(get, link.hash)


def _entity(get: Get, cid: CID, entity_bytes: tuple[int, int | None] | None) -> Iterable[CID]:
    if cid.codec != DAG_PB:
        return [cid]
    data = get(cid)
    kind = unixfs.node_kind(cid, data)
    if kind == "file":
        start, stop = 0, None
        if entity_bytes is not None:
            start, stop = _byte_window(unixfs.file_size(cid, data), *entity_bytes)
            if start >= stop:
                return [cid]  # an empty range: as dag-scope=block
        return unixfs.file_blocks(get, cid, start, stop, missing_ok=True)
    if kind == "hamt":
        return _hamt_shards(get, cid)
    return [cid]


def select(
    get: Get,
    root: CID,
    segments: list[str],
    scope: str = "all",
    entity_bytes: tuple[int, int | None] | None = None,
    dups: bool = False,
) -> tuple[list[CID], list[CID]]:
    """The blocks of a trustless-gateway CAR, in order, and the path's roots: ``(blocks, roots)``.

    The path blocks come first, then the terminal's blocks for ``scope`` depth first; with ``dups``
    False every block appears once; identity CIDs never appear. Raw blocks are named, not read.

    Raises:
        PathNotFoundError: the path names nothing.
        StoreError: an unknown scope, or a malformed node on the way.
    """
    if scope not in SCOPES:
        raise StoreError(f"dag-scope={scope!r} is not one of {', '.join(SCOPES)}")
    if entity_bytes is not None and scope == "all":
        scope = "entity"  # entity-bytes implies dag-scope=entity
    path, terminal, roots = resolve(get, root, segments)
    if scope == "block":
        below: Iterable[CID] = [terminal]
    elif scope == "entity":
        below = _entity(get, terminal, entity_bytes)
    else:
        below = _walk_cids(get, terminal, dups)
    out: list[CID] = []
    seen: set[bytes] = set()
    for cid in [*path, *below]:
        if cid.hash_code == IDENTITY:
            continue
        if not dups:
            if cid.multihash in seen:
                continue
            seen.add(cid.multihash)
        out.append(cid)
    return out, roots


def _walk_cids(get: Get, root: CID, dups: bool) -> Iterator[CID]:
    """CIDs reachable from ``root`` depth first; raw blocks are not read (they have no links). A block
    that is not there is named, and not gone into: a CAR stops short there, as the spec's streaming
    rules want (only a missing root is a 404)."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid.hash_code == IDENTITY:
            continue
        if not dups:
            if cid.multihash in seen:
                continue
            seen.add(cid.multihash)
        yield cid
        if cid.codec != RAW:
            try:
                data = get(cid)
            except BlockNotFoundError:
                continue
            stack.extend(reversed(links(cid, data)))
