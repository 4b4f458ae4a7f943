"""Storing and reading files: UnixFS DAGs written through one pack, read back leaf by leaf.

Terms:
    leaf: a 256 KiB chunk of the file (:data:`greenbench.store.unixfs.CHUNK_SIZE`), stored as a raw
        block; the File nodes above the leaves follow Kubo's balanced layout (:mod:`.unixfs`), so
        ``store put`` gives the CID ``ipfs add --cid-version=1`` gives.
    slot: 1 MiB of a ring buffer (four leaves). Worker threads read and hash whole slots in parallel
        (hashlib releases the GIL), the calling thread looks up which leaves are stored already (one
        index query for up to :data:`_WRITE_RUN` slots), writes the new ones in order into the file's
        pack, up to :data:`_WRITE_RUN` slots in one call, and builds the File nodes as leaves arrive. One sequential writer measured faster than a writer in every worker, and fewer, larger
        writes faster again, on a disk whose writes wait on the CPUs the hashing keeps busy
        (tests/benchmarks/bench_store.py). Memory stays at the ring's size whatever the file size.
    chunked file (old): greenbench before UnixFS stored files over 1 MiB under a dag-json root
        ``{"chunk_size", "chunks": [links], "kind": "greenbench.chunked-file/1", "size"}``; such files
        stay readable (:func:`cat`), and are no longer written.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator

from greenbench.errors import StoreError, VerificationError
from greenbench.fsutil import read_up_to
from greenbench.store import dagjson, unixfs
from greenbench.store.cid import DAG_JSON, DAG_PB, IDENTITY, RAW, SHA2_256, CID

if TYPE_CHECKING:
    from greenbench.store.local import LocalStore

__all__ = ["put_stream", "cat", "LEAF_SIZE", "SLOT_SIZE", "CHUNKED_FILE_KIND", "Progress"]

LEAF_SIZE = unixfs.CHUNK_SIZE
SLOT_SIZE = 4 * LEAF_SIZE
_LEAVES_PER_SLOT = SLOT_SIZE // LEAF_SIZE
_SLOTS_PER_WORKER = 8  # slots of the ring per hashing worker (tests/benchmarks/bench_store.py)
_WRITE_RUN = 4  # consecutive hashed slots written in one call
#: The ``kind`` of an old chunked-file root block.
CHUNKED_FILE_KIND = "greenbench.chunked-file/1"

#: ``progress(bytes_done, total_bytes or None)``, see :meth:`LocalStore.put_file`.
Progress = Callable[[int, "int | None"], None]


def _regular_file(fh: Any) -> tuple[int, int, int] | None:
    """``(fd, position, bytes left)`` when ``fh`` is a seekable regular file, else None."""
    try:
        fd = fh.fileno()
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):
            return None
        pos = fh.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd, pos, max(0, st.st_size - pos)


def put_stream(store: "LocalStore", fh: BinaryIO, name: str, progress: Progress | None) -> CID:
    """Store the bytes of ``fh``: one raw block up to one leaf, else a UnixFS DAG (module docstring)."""
    regular = _regular_file(fh)
    if regular is not None and regular[2] > LEAF_SIZE:
        fd, start, size = regular
        return _put_regular(store, fd, start, size, name, progress)
    first = read_up_to(fh, SLOT_SIZE, name)
    if len(first) <= LEAF_SIZE:
        return store.put_block(first)

    def slots() -> Iterator[bytes]:
        yield first
        while chunk := read_up_to(fh, SLOT_SIZE, name):
            yield chunk

    def copy(chunk: bytes, buf: memoryview) -> int:
        buf[: len(chunk)] = chunk
        return len(chunk)

    return _put_slots(store, slots(), name, copy, None, progress)


def _put_regular(store: "LocalStore", fd: int, start: int, size: int, name: str, progress: Progress | None) -> CID:
    """A regular file: the workers pread and hash slots in parallel."""

    def read_at(offset: int, buf: memoryview) -> int:
        # Straight into the page-aligned ring: hashed there and, with O_DIRECT, written from there, so
        # the bytes are never copied in user space.
        want = min(SLOT_SIZE, start + size - offset)
        try:
            got = os.preadv(fd, [buf[:want]], offset)
        except OSError as exc:
            raise StoreError(f"cannot read {name}: {exc.strerror or exc}") from None
        if got != want:
            raise StoreError(f"{name} changed while it was being stored (shorter than {size} bytes)")
        return want

    return _put_slots(store, range(start, start + size, SLOT_SIZE), name, read_at, size, progress)


def _put_slots(
    store: "LocalStore",
    jobs: Iterable[Any],
    name: str,
    load: Callable[[Any, memoryview], int],
    size: int | None,
    progress: Progress | None,
) -> CID:
    """Store the slots ``load(job, buffer) -> length`` as leaves in one pack, with the File nodes after them."""
    store._ensure()
    slots = _SLOTS_PER_WORKER * store.workers
    ring = mmap.mmap(-1, slots * SLOT_SIZE)
    view = memoryview(ring)
    builder = unixfs.FileBuilder(unixfs.MAX_LINKS)
    shards = store.blockfiles.shards()  # leaves whose shard has no directory need no stat
    # Checked once per file: the per-group checks cost a stat and a directory listing each, and every such
    # system call in this thread hands the GIL to the hashing workers and waits to get it back. A block
    # another writer packs meanwhile is then stored twice, which costs space only.
    rows_only = store._index_has_its_rows()
    nodes: list[tuple[CID, bytes]] = []
    seen: set[bytes] = set()
    total = 0

    def slot(index: int) -> memoryview:
        at = (index % slots) * SLOT_SIZE
        return view[at : at + SLOT_SIZE]

    def hash_slot(index: int, job: Any) -> list[tuple[CID, int]]:
        # Only C calls that release the GIL (a read, four hashes) and little Python: with workers that
        # also looked blocks up (index queries, stats, each a GIL hand-off) they waited on one another
        # and on the writer far more (tests/benchmarks/bench_store.py).
        buf = slot(index)
        n = load(job, buf)
        return [
            (CID(1, RAW, SHA2_256, hashlib.sha256(buf[at : min(n, at + LEAF_SIZE)]).digest()), min(n, at + LEAF_SIZE) - at)
            for at in range(0, n, LEAF_SIZE)
        ]

    run: list[tuple[int, bytes, int]] = []  # (leaf number, multihash, length) of leaves back to back in the ring

    def write(pack) -> None:
        if run:
            first = run[0][0]
            at = (first // _LEAVES_PER_SLOT % slots) * SLOT_SIZE + first % _LEAVES_PER_SLOT * LEAF_SIZE
            pack.write_at(first * LEAF_SIZE, view[at:], [(mh, n) for _, mh, n in run])
            run.clear()

    # The pool exits (its workers done with the ring) before the pack commits or aborts.
    with store._writing_pack(direct=True, what="write blocks to") as pack, ThreadPoolExecutor(
        max_workers=store.workers, thread_name_prefix="gb-store"
    ) as pool:
        inflight: deque = deque()
        todo = enumerate(jobs)
        try:
            while True:
                # Refill every free slot (a slot is free once its leaves are written or skipped).
                while len(inflight) < slots and (item := next(todo, None)) is not None:
                    index, job = item
                    inflight.append((index, pool.submit(hash_slot, index, job)))
                if not inflight:
                    break
                # The oldest slot (waiting for it), then the ones after it that are already hashed.
                group: list[tuple[int, list[tuple[CID, int]]]] = []
                while inflight and len(group) < _WRITE_RUN:
                    index, future = inflight[0]
                    if group and (not future.done() or index % slots == 0):  # not ready, or the ring wraps
                        break
                    inflight.popleft()
                    group.append((index, future.result()))
                # which of the group's leaves are stored already: one index query for all of them
                present = iter(store._present_many([(c.multihash, n) for _, leaves in group for c, n in leaves], shards,
                                                   rows_only))
                for index, leaves in group:
                    for k, (cid, n) in enumerate(leaves):
                        nodes.extend(builder.add_leaf(cid, n))
                        total += n
                        mh = cid.multihash
                        if next(present) or mh in seen:
                            write(pack)  # a hole in the pack: the run stops here
                        else:
                            run.append((index * _LEAVES_PER_SLOT + k, mh, n))
                        seen.add(mh)
                write(pack)
                if progress is not None:
                    progress(total, size)
        except BaseException:
            for _, future in inflight:
                future.cancel()
            raise
        root, last = builder.finish()
        for cid, block in nodes + last:
            mh = cid.multihash
            if mh not in seen and not store._present(mh, len(block)):
                pack.append(mh, block)
            seen.add(mh)
    view.release()
    ring.close()
    return root


# --------------------------------------------------------------------------- reading


def _chunked_root(cid: CID, data: bytes) -> dict | None:
    """The decoded root if ``data`` is an old greenbench chunked-file root, else None."""
    if cid.codec != DAG_JSON or b"greenbench.chunked-file" not in data:
        return None
    try:
        doc = dagjson.decode(data)
    except StoreError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != CHUNKED_FILE_KIND:
        return None
    chunks, size = doc.get("chunks"), doc.get("size")
    if not isinstance(chunks, list) or not all(isinstance(c, CID) for c in chunks) or not isinstance(size, int):
        raise StoreError(f"chunked-file root {cid} is malformed: 'chunks' must be links and 'size' an integer")
    return doc


def _old_chunked(get: Callable[[CID], bytes], cid: CID, root: dict) -> Iterator[bytes]:
    total = 0
    for chunk_cid in root["chunks"]:
        chunk = get(chunk_cid)
        total += len(chunk)
        yield chunk
    if total != root["size"]:
        raise VerificationError(f"chunked file {cid}: chunks add up to {total} bytes, the root says {root['size']}")


def cat(get: Callable[[CID], bytes], cid: CID, precheck: bool = False) -> Iterator[bytes]:
    """The bytes addressed by ``cid``: a UnixFS file's bytes (or an old chunked file's), else the block.

    Every block is verified as it is read (``get`` checks it against its CID).

    Args:
        precheck: read and check every block of a multi-block file before yielding anything, so a
            consumer that cannot take bytes back (stdout) never receives part of a file that then
            fails. Costs a second read of the blocks.

    Raises:
        StoreError: a UnixFS directory or symlink (not a file), or a malformed UnixFS DAG.
        VerificationError: a block does not match its CID, or the parts do not add up.
    """
    if cid.hash_code == IDENTITY:
        yield cid.digest
        return
    data = get(cid)
    old = _chunked_root(cid, data)
    if old is not None:
        if precheck:
            for _ in _old_chunked(get, cid, old):
                pass
        yield from _old_chunked(get, cid, old)
        return
    if cid.codec != DAG_PB:
        yield data
        return
    kind = unixfs.node_kind(cid, data)
    if kind == "dag-pb":  # dag-pb that is not UnixFS: the block is all there is
        yield data
        return
    if kind != "file":
        unixfs.file_size(cid, data)  # raises: a directory, symlink or other non-file node
    cached = {cid: data}

    def first_get(c: CID) -> bytes:
        return cached.pop(c) if c in cached else get(c)

    if precheck:
        for _ in unixfs.iter_file(first_get, cid):
            pass
        cached[cid] = data
    yield from unixfs.iter_file(first_get, cid)
