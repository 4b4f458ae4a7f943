"""Store housekeeping: verify (and repair), garbage-collect, re-index.

Terms:
    verify: re-hash every block file and every packed block the index names. A bad copy is one whose
        bytes no longer match its multihash, or a packed row whose pack is gone. ``repair`` drops bad
        copies (deletes the block file, removes the row), so the block reads as missing and storing it
        again (``store put``, ``car import``, a server upload) writes a good copy: a present-but-bad copy
        would otherwise make every writer skip the block as already stored.
    leftovers: files in ``tmp/`` that no live writer holds (an interrupted write, a killed process), and
        packs that no index row names. A pack no row names but with a valid trailer is complete (its
        writer died between moving it into ``packs/`` and committing its rows, or the index lost them):
        its verified blocks are indexed again, and the pack is deleted only if none of them is needed
        (every block has a copy elsewhere, or none verifies).
    unpinned: blocks reachable from no pin and from no indexed result. ``gc(unpinned=True)`` deletes
        them: block files are removed, packed rows dropped, packs left without rows deleted, and a pack
        that is mostly dead (more dead bytes than live) rewritten with its live blocks only.
    reindex: rebuild the index from what is stored: packed rows from the packs' trailers, and (given an
        ``extract`` function from the layer that understands results) the result rows from the stored
        result envelopes.

The functions here take a :class:`~greenbench.store.local.LocalStore` and hold its ``gc.lock``
exclusively while they change anything, so no writer runs meanwhile; readers are never blocked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from greenbench.errors import StoreError
from greenbench.store.blockfiles import entries, os_error
from greenbench.store.packs import locked, raw_cid, unlink

if TYPE_CHECKING:
    from greenbench.store.cid import CID
    from greenbench.store.local import LocalStore

__all__ = ["VerifyReport", "GcReport", "ReindexReport", "verify", "gc", "reindex"]


@dataclass
class VerifyReport:
    """What :func:`verify` found.

    Attributes:
        block_files: block files re-hashed.
        packed_blocks: packed blocks re-hashed.
        bytes: bytes re-hashed.
        bad: ``{"cid", "where", "problem"}`` of every bad copy (the CID as raw-codec CIDv1 of the
            stored multihash).
        unverifiable: copies whose hash function greenbench cannot compute.
        repaired: bad copies dropped (with ``repair``).
    """

    block_files: int = 0
    packed_blocks: int = 0
    bytes: int = 0
    bad: list[dict] = field(default_factory=list)
    unverifiable: int = 0
    repaired: int = 0

    @property
    def ok(self) -> bool:
        return not self.bad

    def to_json(self) -> dict:
        return {
            "block_files": self.block_files,
            "packed_blocks": self.packed_blocks,
            "bytes": self.bytes,
            "bad": self.bad,
            "unverifiable": self.unverifiable,
            "repaired": self.repaired,
            "ok": self.ok,
        }


@dataclass
class GcReport:
    """What :func:`gc` removed (counts and bytes)."""

    tmp_files: int = 0
    tmp_bytes: int = 0
    packs_reindexed: int = 0
    packs_removed: int = 0
    pack_bytes: int = 0
    blocks_removed: int = 0
    block_bytes: int = 0
    packs_compacted: int = 0
    live_blocks: int = 0
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ReindexReport:
    """What :func:`reindex` rebuilt."""

    pack_rows: int = 0
    results: int | None = None
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"pack_rows": self.pack_rows, "results": self.results, "skipped": self.skipped}


def _size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- verify


def verify(store: "LocalStore", repair: bool = False, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Re-hash every block file and every packed block (module docstring).

    Args:
        repair: drop every bad copy.
        progress: called as ``progress(done, total)`` (copies) as the work goes on.
    """
    report = VerifyReport()
    files = list(store.blockfiles.iter_keys())
    rows = store.index.packed_rows()
    total = len(files) + len(rows)
    done = 0
    bad_files: list = []
    bad_rows: list[tuple[bytes, str]] = []

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None and (done % 256 == 0 or done == total):
            progress(done, total)

    for mh, path in files:
        cid = raw_cid(mh)
        tick()
        if cid is None:
            continue
        report.block_files += 1
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed meanwhile
        except OSError as exc:
            raise os_error(exc, "read", path) from None
        report.bytes += len(data)
        if not cid.can_verify:
            report.unverifiable += 1
        elif not cid.verify(data):
            report.bad.append({"cid": str(cid), "where": str(path), "problem": "bytes do not match the CID"})
            bad_files.append(mh)
    by_pack: dict[str, list[tuple[bytes, int, int]]] = {}
    for mh, pack, offset, length in rows:
        by_pack.setdefault(pack, []).append((mh, offset, length))
    for pack, members in sorted(by_pack.items()):
        path = store.packs.path(pack)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = -1
        except OSError as exc:
            raise os_error(exc, "read", path) from None
        try:
            for mh, offset, length in members:
                tick()
                cid = raw_cid(mh)
                if cid is None:
                    continue
                report.packed_blocks += 1
                if fd < 0:
                    report.bad.append({"cid": str(cid), "where": str(path), "problem": "the pack is missing"})
                    bad_rows.append((mh, pack))
                    continue
                data = os.pread(fd, length, offset)
                report.bytes += len(data)
                if not cid.can_verify:
                    report.unverifiable += 1
                elif len(data) != length or not cid.verify(data):
                    report.bad.append(
                        {"cid": str(cid), "where": f"{path} at offset {offset}", "problem": "bytes do not match the CID"}
                    )
                    bad_rows.append((mh, pack))
        finally:
            if fd >= 0:
                os.close(fd)
    if repair and (bad_files or bad_rows):
        with store._exclusive():
            for mh in bad_files:
                report.repaired += store.blockfiles.remove(mh)
            report.repaired += store.index.forget_packed(bad_rows)
    return report


# --------------------------------------------------------------------------- gc


def _live(store: "LocalStore", report: GcReport) -> set[bytes]:
    """Multihashes reachable from the pins and the indexed results."""
    from greenbench.store.blockfiles import BlockNotFoundError
    from greenbench.store.cid import CID
    from greenbench.store.imports import links

    live: set[bytes] = set()
    roots: list[tuple[CID, bool]] = list(store.pins())
    roots += [(CID.decode(text), True) for text in store.index.iter_result_cids()]
    stack: list[CID] = []
    for cid, recursive in roots:
        if cid.hash_code == 0:
            continue
        if recursive:
            stack.append(cid)
        else:
            live.add(cid.multihash)
    while stack:
        cid = stack.pop()
        if cid.hash_code == 0 or cid.multihash in live:
            continue
        live.add(cid.multihash)
        if cid.codec == 0x55:  # raw: no links, no need to read it
            continue
        try:
            data = store.get_block(cid)
            stack.extend(links(cid, data))
        except BlockNotFoundError:
            report.missing.append(str(cid))
        except StoreError as exc:  # damaged or undecodable: keep it (verify reports it), follow nothing
            report.missing.append(f"{cid} ({exc.message})")
    return live


def gc(store: "LocalStore", unpinned: bool = False) -> GcReport:
    """Remove leftovers; with ``unpinned`` also every block no pin or indexed result reaches (module docstring)."""
    report = GcReport()
    with store._exclusive():
        for entry in entries(store.tmp_dir):
            size = _size(entry)
            with locked(entry) as ok:  # a writer of an older greenbench holds its pack's lock
                if ok and unlink(entry):
                    report.tmp_files += 1
                    report.tmp_bytes += size
        named = store.index.pack_names()
        for path in store.packs.files():
            if path.name in named:
                continue
            with locked(path) as ok:
                if not ok:
                    continue
                rows = store.packs.verified_rows(path)
                if rows and store.index.insert_packed(rows, path.name)[1]:
                    report.packs_reindexed += 1
                    continue
                size = _size(path)
                if not store.index.names_pack(path.name) and unlink(path):
                    report.packs_removed += 1
                    report.pack_bytes += size
        if unpinned:
            _sweep(store, _live(store, report), report)
    return report


def _sweep(store: "LocalStore", live: set[bytes], report: GcReport) -> None:
    report.live_blocks = len(live)
    for mh, path in list(store.blockfiles.iter_keys()):
        if mh not in live:
            size = _size(path)
            if store.blockfiles.remove(mh):
                report.blocks_removed += 1
                report.block_bytes += size
    dead: list[tuple[bytes, str]] = []
    by_pack: dict[str, list[tuple[bytes, int, int, bool]]] = {}
    for mh, pack, offset, length in store.index.packed_rows():
        keep = mh in live
        by_pack.setdefault(pack, []).append((mh, offset, length, keep))
        if not keep:
            dead.append((mh, pack))
            report.blocks_removed += 1
            report.block_bytes += length
    store.index.forget_packed(dead)
    for pack, members in by_pack.items():
        path = store.packs.path(pack)
        alive = [(mh, offset, length) for mh, offset, length, keep in members if keep]
        dead_bytes = sum(length for _, _, length, keep in members if not keep)
        if not alive:
            size = _size(path)
            with locked(path) as ok:
                if ok and not store.index.names_pack(pack) and unlink(path):
                    report.packs_removed += 1
                    report.pack_bytes += size
        elif dead_bytes > sum(length for _, _, length in alive):
            _compact(store, pack, alive, report)


def _compact(store: "LocalStore", pack: str, alive: Iterable[tuple[bytes, int, int]], report: GcReport) -> None:
    """Move a mostly dead pack's live blocks into a new pack, then delete the old one."""
    path = store.packs.path(pack)
    with locked(path) as ok:
        if not ok:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            with store.packs.writing(False, "compact a pack in", store._upgrade_marker, replace=True) as new:
                for mh, offset, length in alive:
                    data = os.pread(fd, length, offset)
                    cid = raw_cid(mh)
                    if cid is not None and cid.can_verify and not cid.verify(data):
                        continue  # damaged: not copied (verify reports it, and its row goes with the pack)
                    new.append(mh, data)
        finally:
            os.close(fd)
        size = _size(path)
        store.index.forget_pack(pack)
        if unlink(path):
            report.packs_compacted += 1
            report.pack_bytes += size


# --------------------------------------------------------------------------- reindex


def reindex(
    store: "LocalStore",
    extract: "Callable[[bytes], tuple[CID, dict] | None] | None" = None,
    prefix: bytes = b"",
) -> ReindexReport:
    """Rebuild the index from what is stored (module docstring).

    Args:
        extract: for a stored block's bytes, ``(cid, info)`` when it is a result to index (the caller
            verifies its signature and computes its CID), else None. None: only packed rows are rebuilt.
        prefix: only blocks starting with these bytes are read whole and given to ``extract`` (the
            rest are skipped after reading their first bytes).
    """
    report = ReindexReport()
    with store._exclusive():
        before = store.index.count_packed()
        store.packs.reindex_unlocked()
        report.pack_rows = store.index.count_packed() - before
        if extract is None:
            return report
        found: dict[str, dict] = {}
        for mh, data in _candidates(store, prefix):
            cid = raw_cid(mh)
            if cid is None or not cid.can_verify or not cid.verify(data):
                report.skipped.append({"cid": str(cid), "reason": "damaged: bytes do not match the CID"})
                continue
            try:
                got = extract(data)
            except StoreError as exc:
                report.skipped.append({"cid": str(cid), "reason": exc.message})
                continue
            if got is not None:
                result_cid, info = got
                found[str(result_cid)] = info
        report.results = store.index.replace_results(sorted(found.items()))
    return report


def _candidates(store: "LocalStore", prefix: bytes):
    """``(multihash, bytes)`` of stored blocks that start with ``prefix`` (each block once)."""
    seen: set[bytes] = set()
    for mh, path in store.blockfiles.iter_keys():
        try:
            with open(path, "rb") as fh:
                if fh.read(len(prefix)) != prefix:
                    continue
                data = prefix + fh.read()
        except OSError:
            continue
        seen.add(mh)
        yield mh, data
    rows = store.index.packed_rows()
    current = None
    fd = -1
    try:
        for mh, pack, offset, length in rows:
            if mh in seen:
                continue
            if pack != current:
                if fd >= 0:
                    os.close(fd)
                current = pack
                try:
                    fd = os.open(store.packs.path(pack), os.O_RDONLY)
                except OSError:
                    fd = -1
            if fd < 0 or length < len(prefix) or os.pread(fd, len(prefix), offset) != prefix:
                continue
            yield mh, os.pread(fd, length, offset)
    finally:
        if fd >= 0:
            os.close(fd)
