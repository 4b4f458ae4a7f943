"""The embedded default store: block files, packs and an SQLite index in one directory.

Terms:
    block: some bytes addressed by a CID. The store keys a block by its *multihash* (the CID minus
        version and codec), as Kubo's blockstore does, so the same bytes addressed as raw or as
        dag-json, or by a CIDv0 and a CIDv1, are stored once.
    file: ``put_file`` stores a file of up to 256 KiB as one raw block and a larger one as a UnixFS DAG
        with the CID Kubo's ``ipfs add --cid-version=1`` gives (:mod:`.files`, :mod:`.unixfs`).
    pin: a CID kept by ``gc(unpinned=True)`` with everything it links to (:mod:`.index`).

Layout of a store directory::

    greenbench-store.json          {"layout": ..., "version": 2}
    blocks/<2 chars>/<key>         one file per single block (put_block, put_verified) (:mod:`.blockfiles`)
    packs/<random>.pack            blocks of files and CAR imports, found through the index (:mod:`.packs`)
    tmp/                           temporary files and packs of writes in progress (same filesystem)
    index.sqlite                   packed blocks, results, pins (:mod:`.index`)
    gc.lock                        writers hold it shared, ``gc(unpinned=True)`` exclusively

    Version 1 (no packs) is read as it is and becomes version 2 when its first pack is written, so an
    older greenbench refuses it rather than miss the packed blocks.

Guarantees:
    * Writes are atomic and durable (temporary file or pack, fsync, rename, directory fsync, then the
      index rows), so a crash never leaves a visible partial block.
    * Every read re-hashes the block: :meth:`LocalStore.get_block` raises :class:`VerificationError`
      (exit 1) for a corrupted block instead of returning its bytes, every time: a read never changes
      the store (``store verify --repair`` drops bad copies; storing the data again then heals them).
      Reading needs no write access at all: a read-only store is readable.
    * Bytes that do not match their CID are never stored, nor dag-pb/dag-cbor/dag-json blocks that do
      not decode: :meth:`LocalStore.put_verified` raises :class:`VerificationError` (exit 1), and
      :meth:`LocalStore.import_car` checks every block of a CAR before any of them becomes visible.
    * Several processes may write at once: renames are atomic, blocks are immutable, every writer has
      packs of its own (rows go in with ``INSERT OR IGNORE``: the first copy wins), and SQLite
      serialises index writes. This needs a local filesystem (SQLite's WAL and ``flock`` do); on a
      network filesystem put the store elsewhere, or share it through ``greenbench serve``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from greenbench.errors import StoreError, VerificationError
from greenbench.fsutil import atomic_open, default_store_dir, open_input
from greenbench.store import files as _files
from greenbench.store import imports as _imports
from greenbench.store import maintenance
from greenbench.store import multiformats as mf
from greenbench.store.blockfiles import BlockFiles, BlockNotFoundError, fsync_path, os_error, shard_of
from greenbench.store.car import write_car
from greenbench.store.cid import IDENTITY, CID, cid_for
from greenbench.store.imports import IMPORT_BLOCK_LIMIT, ImportResult
from greenbench.store.index import Index, file_id
from greenbench.store.packs import Packs, locked, raw_cid

__all__ = [
    "LocalStore",
    "open_store",
    "BlockNotFoundError",
    "ImportResult",
    "BLOCK_LIMIT",
    "IMPORT_BLOCK_LIMIT",
    "CHUNK_SIZE",
    "CHUNKED_FILE_KIND",
]

#: Largest block greenbench makes itself (``put_block``).
BLOCK_LIMIT = 1 << 20
#: Leaf size of stored files (Kubo's default chunk size).
CHUNK_SIZE = _files.LEAF_SIZE
CHUNKED_FILE_KIND = _files.CHUNKED_FILE_KIND
STORE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MARKER = "greenbench-store.json"
REPAIR_HINT = (
    "run `greenbench store verify --repair` to drop the bad copy, then store the data again from a good copy "
    "(greenbench store put FILE, or store car import)"
)

Progress = _files.Progress


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalStore:
    """A store directory (see the module docstring).

    Args:
        root: the store directory; created on the first write.
        workers: threads that read and hash large files while the calling thread writes them in order
            (default: one per CPU but the one the writing thread keeps, at least 1, at most 8: on 2 CPUs
            with 2 hashing threads the writes waited for a CPU and the disk idled between them, 0.65 of
            sha256's speed against 0.71 with 1; tests/benchmarks/bench_store.py).
    """

    def __init__(self, root: str | os.PathLike, workers: int | None = None):
        self.root = Path(root)
        self.index_path = self.root / "index.sqlite"
        self.workers = workers or max(1, min(8, _usable_cpus() - 1))
        self.blockfiles = BlockFiles(self.root)
        self.index = Index(self.index_path, self._ensure, self._on_new_index)
        self.packs = Packs(self.root, self.index, self.blockfiles)
        self.blocks_dir = self.blockfiles.dir
        self.tmp_dir = self.blockfiles.tmp_dir
        self.packs_dir = self.packs.dir
        self._ready = False
        self._version = STORE_VERSION
        self._rows_seen: tuple[int, int] | None = None  # index file known to have packed rows
        self._trailers: tuple[tuple[str, ...], dict[bytes, tuple[str, int, int]]] | None = None
        self._check_marker()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # --- layout ------------------------------------------------------------------------------

    def _check_marker(self) -> None:
        marker = self.root / _MARKER
        try:
            raw = marker.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_error(exc, "read", marker) from None
        try:
            version = json.loads(raw).get("version")
        except (ValueError, AttributeError):
            version = None
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
            raise StoreError(
                f"{marker}: unknown store layout version {version!r} (this greenbench reads versions "
                f"{', '.join(map(str, _READABLE_VERSIONS))})",
                "upgrade greenbench, or pass --store DIR with another directory",
            )
        self._version = version

    def _ensure(self) -> None:
        """Make the store's directories and marker (writes only)."""
        if self._ready:
            return
        try:
            self.blocks_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(exist_ok=True)
            if not (self.root / _MARKER).exists():
                self._write_marker()
        except OSError as exc:
            raise os_error(exc, "create the store in", self.root) from None
        self._ready = True

    def _write_marker(self) -> None:
        body = json.dumps(
            {"layout": "blocks/<shard>/<base32 multihash> + packs/<name>.pack", "version": STORE_VERSION}, sort_keys=True
        )
        tmp = self.blockfiles.write_temp(body.encode())
        os.replace(tmp, self.root / _MARKER)
        fsync_path(self.root)
        self._version = STORE_VERSION

    def _upgrade_marker(self) -> None:
        """Mark a version-1 store as version 2 before its first pack becomes visible."""
        if self._version != STORE_VERSION:
            self._write_marker()

    def _on_new_index(self, conn: sqlite3.Connection) -> None:
        # Packs, but no packed rows: the index was lost and made anew. A committed pack always has rows
        # (commit deletes one that has none), so rebuild them from the packs' trailers.
        if self.packs.any() and conn.execute("SELECT 1 FROM packed LIMIT 1").fetchone() is None:
            self.packs.reindex_unlocked(conn)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held (shared) by every write, so ``gc(unpinned=True)`` (exclusive) never sweeps a block that a
        writer has just found present and is about to link to."""
        self._ensure()
        path = self.root / "gc.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_error(exc, "write to", self.root) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self._ensure()
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _writing_pack(self, direct: bool, what: str):
        return self.packs.writing(direct, what, self._upgrade_marker)

    def block_path(self, cid: CID) -> Path:
        """Where the block file for ``cid`` lives (whether or not it is there)."""
        return self.blockfiles.path(cid.multihash)

    # --- lookups -----------------------------------------------------------------------------

    def _packed(self, mh: bytes) -> tuple[str, int, int] | None:
        """``(pack, offset, length)`` of a packed block, or None."""
        return self._packed_many([mh]).get(mh)

    def _packed_many(self, mhs: list[bytes], rows_only: bool = False) -> dict[bytes, tuple[str, int, int]]:
        """The packed rows of those of ``mhs`` that are packed, in one query. A store whose index lost its
        rows (and that nobody has written to since, which would rebuild them) is read from the packs'
        trailers, unless ``rows_only`` (a caller that checked :meth:`_index_has_its_rows` already)."""
        rows = self.index.packed_many(mhs)
        if len(rows) == len(mhs) or rows_only:
            return rows
        ident = self._index_id()
        if ident is not None and ident == self._rows_seen:
            return rows
        if self.index.has_packed_rows():
            self._rows_seen = ident
            return rows
        if not self.packs.any():
            return rows
        trailers = self._trailer_map()
        return {mh: trailers[mh] for mh in mhs if mh in trailers}

    def _index_id(self) -> tuple[int, int] | None:
        return file_id(self.index_path)

    def _trailer_map(self) -> dict[bytes, tuple[str, int, int]]:
        """Blocks listed by the trailers of the packs no writer holds (a held pack is not committed yet)."""
        files = self.packs.files()
        names = tuple(p.name for p in files)
        if self._trailers is not None and self._trailers[0] == names:
            return self._trailers[1]
        rows: dict[bytes, tuple[str, int, int]] = {}
        complete = True
        for path in files:
            with locked(path) as free:
                if not free:
                    complete = False
                    continue
                for mh, offset, length in self.packs.trailer_rows(path):
                    rows.setdefault(mh, (path.name, offset, length))
        if complete:
            self._trailers = (names, rows)
        return rows

    def _present(self, mh: bytes, size: int) -> bool:
        """True when the block is stored (a file or a packed row of that size); not re-hashed."""
        return self._present_many([(mh, size)])[0]

    def _index_has_its_rows(self) -> bool:
        """Whether the index can be trusted to list every packed block (it has rows, or there are no packs):
        else presence is read from the packs' trailers (see :meth:`_packed_many`)."""
        return self.index.has_packed_rows() or not self.packs.any()

    def _present_many(self, blocks: list[tuple[bytes, int]], shards: set[str] | None = None,
                      rows_only: bool = False) -> list[bool]:
        """:meth:`_present` of several blocks: one index query, then a stat for each block not packed
        (skipped when ``shards``, the shard directories that existed when a write began, lacks its shard:
        a block file made meanwhile is then stored a second time in the pack, which costs space only).
        ``rows_only``: trust the index's rows (checked once by the caller with :meth:`_index_has_its_rows`)."""
        rows = self._packed_many([mh for mh, _ in blocks], rows_only)
        return [
            (mh in rows and rows[mh][2] == size)
            or ((shards is None or shard_of(mh) in shards) and self.blockfiles.size(mh) == size)
            for mh, size in blocks
        ]

    def _copies(self, mh: bytes) -> Iterator[tuple[bytes | None, str, str | None]]:
        """The stored copies of a block: ``(bytes or None when its pack is gone, where, pack name)``, the
        block file first."""
        data = self.blockfiles.read(mh)
        if data is not None:
            yield data, str(self.blockfiles.path(mh)), None
        row = self._packed(mh)
        if row is not None:
            data = self.packs.read(*row)
            if data is None:  # gone: `store gc` may have moved the block to a new pack meanwhile
                again = self._packed(mh)
                if again is not None and again != row:
                    row, data = again, self.packs.read(*again)
            name, offset, _ = row
            yield data, f"{self.packs.path(name)} at offset {offset}", name

    # --- blocks ------------------------------------------------------------------------------

    def _store(self, cid: CID, data: bytes | memoryview) -> bool:
        """Atomically and durably store one block already known to match ``cid``. True if written.

        A copy already there is compared byte for byte (a single block is small): a damaged one is
        replaced by a good block file, so storing the data again heals it.
        """
        if cid.hash_code == IDENTITY:
            return False
        mh = cid.multihash
        if self._present(mh, len(data)):
            if any(copy == data for copy, _, _ in self._copies(mh)):
                return False
        try:
            with self._writing():
                self.blockfiles.write(mh, data)
        except OSError as exc:
            raise os_error(exc, "write a block to", self.root) from None
        return True

    def put_block(self, data: bytes | bytearray | memoryview, codec: str | int = "raw") -> CID:
        """Store ``data`` as one block and return its CIDv1 (sha2-256).

        DAG-PB, DAG-JSON and DAG-CBOR blocks are decoded first, so the store never holds an undecodable one.

        Raises:
            StoreError: larger than :data:`BLOCK_LIMIT`, undecodable for its codec, or the store is not writable.
        """
        if len(data) > BLOCK_LIMIT:
            raise StoreError(
                f"block of {len(data)} bytes exceeds the {BLOCK_LIMIT}-byte block limit",
                "store large data with put_file / `greenbench store put`, which chunks it",
            )
        cid = cid_for(data, mf.codec_code(codec))
        _imports.check_decodes(cid, data)
        self._store(cid, data)
        return cid

    def put_verified(self, cid: CID | str, data: bytes | bytearray | memoryview) -> CID:
        """Store a block under a CID someone else computed, after checking the bytes match it.

        Raises:
            VerificationError: the bytes do not hash to ``cid`` (exit 1; nothing stored).
            StoreError: a hash function greenbench cannot check, a block over :data:`IMPORT_BLOCK_LIMIT`,
                or a dag-pb/dag-cbor/dag-json block that does not decode.
        """
        cid = CID.decode(cid)
        if len(data) > IMPORT_BLOCK_LIMIT:
            raise StoreError(f"block {cid} of {len(data)} bytes exceeds the {IMPORT_BLOCK_LIMIT}-byte limit")
        if not cid.can_verify:
            raise StoreError(f"cannot verify block {cid}: hash function {cid.hash_name} is not supported; not stored")
        if not cid.verify(data):
            raise VerificationError(
                f"block bytes do not match {cid}: their {cid.hash_name} differs; not stored",
                "fetch the block again from a source you trust",
            )
        _imports.check_decodes(cid, data)
        self._store(cid, data)
        return cid

    def has(self, cid: CID | str) -> bool:
        """True when the block is in the store (identity CIDs always are)."""
        cid = CID.decode(cid)
        if cid.hash_code == IDENTITY:
            return True
        mh = cid.multihash
        return self.blockfiles.size(mh) is not None or self._packed(mh) is not None

    def block_size(self, cid: CID | str) -> int | None:
        """The stored block's length without reading it (None when absent)."""
        cid = CID.decode(cid)
        if cid.hash_code == IDENTITY:
            return len(cid.digest)
        size = self.blockfiles.size(cid.multihash)
        if size is not None:
            return size
        row = self._packed(cid.multihash)
        return None if row is None else row[2]

    def get_block(self, cid: CID | str) -> bytes:
        """The block's bytes, re-hashed against ``cid`` on every read (the first good copy wins).

        Raises:
            BlockNotFoundError: no such block (exit 2).
            VerificationError: every stored copy is damaged or gone (exit 1, every time: a read never
                changes the store).
        """
        cid = CID.decode(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        if not cid.can_verify:
            raise StoreError(f"cannot verify block {cid}: hash function {cid.hash_name} is not supported")
        bad = []
        for data, where, _ in self._copies(cid.multihash):
            if data is None:
                bad.append(f"{where}: the pack is missing")
            elif cid.verify(data):
                return data
            else:
                bad.append(f"{where}: its bytes no longer match the CID")
        if not bad:
            raise BlockNotFoundError(
                f"block {cid} is not in the store {self.root}",
                "check the CID, or pass --store DIR / GREENBENCH_STORE for the store that has it",
            )
        raise VerificationError(f"block {cid} is damaged: {'; '.join(bad)}", REPAIR_HINT)

    def iter_cids(self) -> Iterator[CID]:
        """Every stored block (files, then packed blocks) as a raw-codec CIDv1 (the store keeps multihashes, not codecs)."""
        for mh, _ in self.blockfiles.iter_keys():
            cid = raw_cid(mh)
            if cid is not None:
                yield cid
        mhs = self.index.packed_multihashes()
        if not mhs and self.packs.any():
            mhs = sorted(self._trailer_map())
        for mh in mhs:
            cid = raw_cid(mh)
            if cid is not None and self.blockfiles.size(mh) is None:
                yield cid

    # --- files -------------------------------------------------------------------------------

    def put_file(
        self, source: str | os.PathLike | BinaryIO, progress: Progress | None = None, pin: bool = False
    ) -> CID:
        """Store a file (path or binary stream): one raw block up to 256 KiB, else a UnixFS DAG whose
        root CID is the one ``ipfs add --cid-version=1`` gives.

        Args:
            progress: for a multi-block file, called as ``progress(bytes_done, total_bytes)`` as the
                leaves are written (``total_bytes`` None for a stream of unknown length), from the
                calling thread.
            pin: pin the root (recursively), as ``ipfs add`` does.

        Raises:
            StoreError: the file cannot be read, or the store cannot be written.
        """
        with self._writing():
            if isinstance(source, (str, os.PathLike)):
                with open_input(source) as fh:
                    root = _files.put_stream(self, fh, str(source), progress)
            else:
                root = _files.put_stream(self, source, getattr(source, "name", "<stream>"), progress)
            if pin:
                self.index.add_pins([(str(root.to_v1()), str(root), True)])
        return root

    def cat(self, cid: CID | str, precheck: bool = False) -> Iterator[bytes]:
        """The bytes addressed by ``cid``: a UnixFS file's bytes (or an old chunked file's), else the
        block itself. Every block is verified as it is read (see :func:`greenbench.store.files.cat`)."""
        return _files.cat(self.get_block, CID.decode(cid), precheck)

    # --- CAR ---------------------------------------------------------------------------------

    def import_car(
        self, source: str | os.PathLike | bytes | BinaryIO, max_bytes: int | None = None, pin_roots: bool = False
    ) -> ImportResult:
        """Import every block of a CAR (v1, or the inner v1 of a v2), all or nothing.

        Every block is checked against its CID (and decoded, for dag-pb, dag-cbor and dag-json) as it is
        read; the new ones go into a pack that becomes visible only when the whole CAR has been read.

        Args:
            max_bytes: refuse (import nothing) when the CAR's new blocks add up to more.
            pin_roots: pin the CAR's roots recursively (as Kubo's ``dag import`` does by default).

        Returns:
            The CAR's roots (an :class:`ImportResult`, a ``list[CID]`` with counts).

        Raises:
            StoreError: malformed CAR or block, an unverifiable hash function, an oversized block, over
                ``max_bytes`` (nothing imported).
            VerificationError: a block whose bytes do not match its CID (nothing imported).
        """
        with self._writing():
            result = _imports.import_car(self, source, max_bytes)
            if pin_roots and result:
                self.pin(result, recursive=True)
        return result

    def walk(self, roots: Iterable[CID | str], dups: bool = False) -> Iterator[tuple[CID, bytes]]:
        """Blocks reachable from ``roots`` through dag-json, dag-cbor and dag-pb links, depth first, each
        once (every occurrence with ``dups``). Identity CIDs are not emitted.

        Raises:
            BlockNotFoundError: a reachable block is missing (names the block that links to it).
        """

        def missing(cid: CID, parent: CID) -> Exception:
            return BlockNotFoundError(
                f"block {cid}, linked from {parent}, is not in the store {self.root}",
                "import the missing blocks (greenbench store car import) before exporting",
            )

        return _imports.walk(self.get_block, [CID.decode(r) for r in roots], missing, dups)

    def export_car(self, roots: Iterable[CID | str], out_path: str | os.PathLike) -> int:
        """Write a CARv1 of ``roots`` and every block reachable from them to ``out_path`` (atomically).

        Returns:
            The number of blocks written.
        """
        roots = [CID.decode(r) for r in roots]
        if not roots:
            raise StoreError("no root CIDs to export", "pass one or more CIDs")
        count = 0

        def counted():
            nonlocal count
            for item in self.walk(roots):
                count += 1
                yield item

        with atomic_open(Path(out_path)) as fh:
            write_car(fh, roots, counted())
        return count

    # --- pins --------------------------------------------------------------------------------

    def pin(self, cids: Iterable[CID | str] | CID | str, recursive: bool = True) -> list[CID]:
        """Pin CIDs so ``gc(unpinned=True)`` keeps them (recursive: with every block they link to).

        Every block the pin covers must be in the store (this store fetches nothing).

        Raises:
            BlockNotFoundError: a covered block is missing (nothing pinned).
            VerificationError: a covered block is damaged (nothing pinned).
        """
        if isinstance(cids, (str, CID)):
            cids = [cids]
        parsed = [CID.decode(c) for c in cids]
        with self._writing():
            for cid in parsed:
                if recursive:
                    for _ in self.walk([cid]):
                        pass
                else:
                    self.get_block(cid)
            self.index.add_pins((str(c.to_v1()), str(c), recursive) for c in parsed)
        return parsed

    def unpin(self, cid: CID | str) -> bool:
        """Remove a pin; False when ``cid`` was not pinned."""
        cid = CID.decode(cid)
        with self._writing():
            return self.index.remove_pin(str(cid.to_v1()))

    def pins(self) -> list[tuple[CID, bool]]:
        """``(cid, recursive)`` of every pin."""
        return [(CID.decode(text), recursive) for text, recursive in self.index.pins()]

    # --- result index ------------------------------------------------------------------------

    def index_result(self, cid: CID | str, info: dict[str, Any]) -> None:
        """Add (or replace) the index row of the result stored under ``cid``.

        Args:
            info: ``signer``, ``profile``, ``backend``, ``hardware`` (``cpu_model``, ``gpu_models``),
                ``created`` (ISO 8601 text) and ``metrics`` (``j_per_token``, ``tokens_per_s``, ...).
                The whole dict is kept and returned by :meth:`query_results`.
        """
        self.index.index_result(str(CID.decode(cid)), info)

    def put_results(self, items: list[tuple[CID, bytes, Any]]) -> list[bool]:
        """Store many result blocks and index them: the new blocks go into one pack (one fsync for all),
        their index rows into one transaction.

        Args:
            items: ``(cid, block bytes, index info)``, the info as a dict or as the rows
                :meth:`greenbench.store.index.Index.result_rows` made of it (in a worker process); the caller
                made each block itself, so its bytes match its CID (checked again here: a mismatch is a bug,
                and nothing is stored).

        Returns:
            For each item, whether its block was new to the store.

        Raises:
            VerificationError: a block does not match its CID (nothing stored).
            StoreError: the store cannot be written.
        """
        for cid, data, _ in items:
            if not cid.verify(data):
                raise VerificationError(f"block bytes do not match {cid}; nothing stored")
        with self._writing():
            try:  # block files are looked for only in shards that exist (result envelopes live in packs)
                shards = {e.name for e in os.scandir(self.blocks_dir)}
            except FileNotFoundError:
                shards = set()
            present = self._present_many([(cid.multihash, len(data)) for cid, data, _ in items], shards)
            seen: set[bytes] = set()
            with self._writing_pack(direct=False, what="store results in") as pack:
                for (cid, data, _), here in zip(items, present):
                    mh = cid.multihash
                    if here or mh in seen or cid.hash_code == IDENTITY:
                        continue
                    seen.add(mh)
                    pack.append(mh, data)
            self.index.insert_rows([info if isinstance(info, tuple) else self.index.result_rows(str(cid), info)
                                    for cid, _, info in items])
        return [not here for here in present]

    def board_rows(self, fields: int, columns: int | None = None) -> list[tuple]:
        """The leaderboard's rows of the result index (see :meth:`greenbench.store.index.Index.board_rows`)."""
        return self.index.board_rows(fields, columns)

    def stale_results(self, fields: int) -> list[str]:
        """Result rows to extract again (see :meth:`greenbench.store.index.Index.stale_results`)."""
        return self.index.stale_results(fields)

    def index_results(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add (or replace) many result rows in one transaction."""
        return self.index.index_results([(str(CID.decode(cid)), info) for cid, info in items])

    def set_result_verdicts(self, verdicts: Iterable[tuple[str, str]]) -> int:
        """Record ``(cid, verdict)`` of indexed results (``store verify`` re-checking signatures)."""
        return self.index.set_verdicts(verdicts)

    def query_results(self, **filters: Any) -> list[dict[str, Any]]:
        """Indexed results matching every filter (see :meth:`greenbench.store.index.Index.query_results`)."""
        return self.index.query_results(**filters)

    def result_state(self) -> tuple[int, int, int]:
        """A value that changes whenever a result is indexed (for caches of derived views)."""
        return self.index.result_state()

    # --- housekeeping (greenbench.store.maintenance) -------------------------------------------

    def verify(self, repair: bool = False, progress: Callable[[int, int], None] | None = None):
        """Re-hash every block file and packed block; see :func:`greenbench.store.maintenance.verify`."""
        return maintenance.verify(self, repair, progress)

    def gc(self, unpinned: bool = False):
        """Remove leftovers (and with ``unpinned``, unreferenced blocks); see :func:`greenbench.store.maintenance.gc`."""
        return maintenance.gc(self, unpinned)

    def reindex(self, extract: Callable[[bytes], "tuple[CID, dict] | None"] | None = None, prefix: bytes = b""):
        """Rebuild the packed rows from the packs and, with ``extract``, the result index from the stored
        blocks; see :func:`greenbench.store.maintenance.reindex`."""
        return maintenance.reindex(self, extract, prefix)

    def reindex_packs(self) -> int:
        """Add rows for every pack block the index lacks (verified first); returns how many went in."""
        with self._writing():
            return self.packs.reindex_unlocked()


def open_store(option: str | os.PathLike | None = None) -> LocalStore:
    """The store named by ``--store DIR``, else ``GREENBENCH_STORE``, else the user data dir."""
    return LocalStore(default_store_dir(option))

