"""The embedded default store: a blockstore directory plus an SQLite index of results and packed blocks.

Terms:
    block: some bytes addressed by a CID. The store keys a block by its *multihash* (the CID minus
        version and codec), as Kubo's blockstore does, so the same bytes addressed as raw or as
        dag-json, or by a CIDv0 and a CIDv1, are stored once.
    chunked file: a file larger than :data:`BLOCK_LIMIT` (1 MiB) is stored as raw blocks of
        :data:`CHUNK_SIZE` bytes (the last may be shorter) under a DAG-JSON root block::

            {"chunk_size": 1048576, "chunks": [{"/": "bafkrei..."}, ...],
             "kind": "greenbench.chunked-file/1", "size": <total bytes>}

        ``cat(root)`` streams the chunks back in order and checks the total size. One root lists up
        to about 15,000 chunks, so a file may be up to ~15 GiB.
    pack: the new blocks of one write, in one file ``packs/<name>.pack``. A chunked file's pack has
        chunk ``i`` at byte offset ``i * CHUNK_SIZE`` (the stored file itself, with holes where a chunk
        was already in the store); a CAR import's pack has the CAR's new blocks end to end. One
        sequential file instead of one file per block: creating and syncing hundreds of 1 MiB files
        cost more than hashing them (tests/benchmarks/bench_store.py), and a CAR of 100,000 small
        blocks imports as one file. A pack ends with a trailer listing its blocks (multihash, offset,
        length), so a lost index is rebuilt from the packs (:meth:`LocalStore.reindex_packs`, run by
        itself when a store with packs finds its index missing or empty).
    index: ``index.sqlite`` (WAL mode, busy timeout). Table ``packed`` maps a multihash to its pack,
        offset and length; table ``results`` has one row per indexed result CID with its signer,
        profile, backend, hardware and headline metrics, for fast queries without reading blocks.

Layout of a store directory::

    greenbench-store.json          {"layout": ..., "version": 2}
    blocks/<2 chars>/<key>         one file per single block (put_block, put_verified); key = base32
                                   of the multihash, the shard is the two characters before its last
    packs/<random>.pack            blocks of chunked files and CAR imports, found through ``packed``
    tmp/                           temporary files and packs of writes in progress (same filesystem)
    index.sqlite                   the index

    Version 1 (no packs) is read as it is and becomes version 2 when its first pack is written, so an
    older greenbench refuses it rather than miss the packed blocks.

Guarantees:
    * Writes are atomic: a single block is written to ``tmp/``, fsynced, renamed into place and its
      shard directory fsynced, so a crash mid-write never leaves a visible partial block. A pack is
      written in ``tmp/`` under a lock, gets its trailer, is fsynced, renamed into ``packs/`` (directory
      fsynced), and becomes visible only when its rows are committed to ``packed`` (one transaction);
      its writer holds the lock until then. :meth:`LocalStore.clean_tmp` deletes what dead writers
      left in ``tmp/`` and re-indexes a pack that reached ``packs/`` without its rows. Large aligned
      writes use O_DIRECT where the filesystem allows it (past the page cache, which on some hosts
      costs several times the hashing); the durability steps are the same.
    * Every read re-hashes the block: :meth:`LocalStore.get_block` raises :class:`VerificationError`
      (exit 1) for a corrupted block instead of returning its bytes.
    * Bytes that do not match their CID are never stored: :meth:`LocalStore.put_verified` raises
      :class:`VerificationError` (exit 1), and :meth:`LocalStore.import_car` checks every block of a
      CAR before any of them becomes visible (all or nothing).
    * Several processes may write at once: renames are atomic, blocks are immutable, every writer has
      packs of its own (rows go in with ``INSERT OR IGNORE``: the first copy wins), and SQLite
      serialises index writes. This needs a local filesystem (SQLite's WAL and ``flock`` do); on a
      network filesystem put the store elsewhere, or share it through ``greenbench serve``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from greenbench.errors import StoreError, VerificationError
from greenbench.fsutil import atomic_open, default_store_dir, open_input, read_up_to
from greenbench.store import dagcbor, dagjson, dagpb
from greenbench.store import multiformats as mf
from greenbench.store.car import CarReader, write_car
from greenbench.store.cid import DAG_CBOR, DAG_JSON, DAG_PB, IDENTITY, RAW, SHA2_256, CID, cid_for

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

#: Largest block greenbench makes (``put_block``, file chunks).
BLOCK_LIMIT = 1 << 20
#: Largest block accepted from elsewhere (``put_verified``, ``import_car``): the libp2p/bitswap limit.
IMPORT_BLOCK_LIMIT = 2 << 20
#: Chunk size of chunked files.
CHUNK_SIZE = 1 << 20
#: The ``kind`` of a chunked-file root block.
CHUNKED_FILE_KIND = "greenbench.chunked-file/1"
STORE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MARKER = "greenbench-store.json"
_SQLITE_TIMEOUT_S = 30.0

#: ``progress(bytes_done, total_bytes or None)``, see :meth:`LocalStore.put_file`.
Progress = Callable[[int, "int | None"], None]


class BlockNotFoundError(StoreError):
    """The store has no block for this CID (exit 2; the HTTP server maps it to 404)."""


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


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n


def _os_error(exc: OSError, what: str, path: Path) -> StoreError:
    return StoreError(
        f"cannot {what} {path}: {exc.strerror or exc}",
        "pass --store DIR with a directory you can write to (or set GREENBENCH_STORE)",
    )


_O_DIRECT = getattr(os, "O_DIRECT", 0)
_DIRECT_ALIGN = 4096  # O_DIRECT wants sizes (and buffers) aligned to the logical block size; 4 KiB covers all
_BUFFERS_PER_WORKER = 8  # 1 MiB slots of the put_file ring per hashing worker (tests/benchmarks/bench_store.py)
_WRITE_RUN = 4  # consecutive hashed chunks written in one call
_DIRECT_MIN = 256 * 1024  # below this the page cache is as fast, and small blocks are common
_INDEX_HINT = (
    "if the file is damaged, move it away: greenbench rebuilds the block index from the packs "
    "(results must then be published again to be indexed)"
)
_REPAIR_HINT = "store it again from a good copy (greenbench store put FILE, or store car import)"
_PACK_NAME = re.compile(r"[0-9a-f]{32}\.pack")

#: query_results filter -> (SQL clause with one parameter, how the value is converted).
_RESULT_FILTERS: dict[str, tuple[str, Any]] = {
    **{k: (f"{k} = ?", str) for k in ("cid", "signer", "profile", "backend", "cpu_model")},
    "gpu_model": ("EXISTS (SELECT 1 FROM json_each(results.gpu_models) WHERE json_each.value = ?)", str),
    "created_after": ("created >= ?", str),
    "created_before": ("created <= ?", str),
    "max_j_per_token": ("j_per_token <= ?", float),
    "min_tokens_per_s": ("tokens_per_s >= ?", float),
}


class _Pack:
    """New blocks of one write (a chunked file, a CAR import) in a pack of their own (module docstring).

    The pack is written in ``tmp/`` under an exclusive ``flock``, which it keeps until its rows are in
    (or it is deleted): only the holder of a pack's lock inserts rows naming it or deletes it, and
    re-indexing skips locked packs.
    :meth:`commit` truncates it, appends the trailer, fsyncs it, renames it into ``packs/``, fsyncs that
    directory, and only then inserts its rows into ``packed``, in one transaction. A pack no row names
    afterwards (another writer committed the same blocks first) is deleted. An error or Ctrl-C before
    the rows are in deletes the pack; one after leaves it, since it is visible.

    Args:
        direct: try O_DIRECT (for page-aligned buffers written at 1 MiB offsets by :meth:`write`).
    """

    def __init__(self, store: "LocalStore", direct: bool):
        self.store = store
        self.name = f"{os.urandom(16).hex()}.pack"
        self.path = store.tmp_dir / self.name
        self.lock_fd = -1  # buffered descriptor holding the flock (and writing the trailer)
        self.fd = -1  # the data descriptor: O_DIRECT where possible, else lock_fd
        self.want_direct = direct
        self.direct = False
        self.rows: list[tuple[bytes, str, int, int]] = []
        self.end = 0
        self.inserted = 0
        self.renamed = False
        self.committed = False

    def _open(self) -> None:
        store = self.store
        # The index exists before any pack does: packs without an index always mean a lost index.
        store._connect().close()
        if not store.packs_dir.is_dir():
            store.packs_dir.mkdir(exist_ok=True)
            _fsync_path(store.root)
        self.lock_fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)  # clean_tmp leaves a locked pack alone
        self.fd = self.lock_fd
        if self.want_direct and store._direct_ok:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | _O_DIRECT)
                self.direct = True
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                store._direct_ok = False  # this filesystem refuses O_DIRECT: buffered writes from now on

    def write(self, index: int, view: memoryview, chunks: list[tuple[bytes, int]]) -> None:
        """Write consecutive chunks ``index, index + 1, ...`` in one call, at ``index * CHUNK_SIZE``.

        ``chunks`` are their ``(multihash, length)``; their bytes lie back to back in the page-aligned
        ``view``, each CHUNK_SIZE long but the last.
        """
        if self.fd < 0:
            self._open()
        offset = index * CHUNK_SIZE
        length = (len(chunks) - 1) * CHUNK_SIZE + chunks[-1][1]
        if self.direct:
            # O_DIRECT wants whole 4 KiB blocks: a short last chunk goes out padded with whatever the buffer
            # holds past it (still inside its slot), and commit() truncates the pack back to its true length.
            try:
                _pwrite_all(self.fd, view[: -(-length // _DIRECT_ALIGN) * _DIRECT_ALIGN], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._to_buffered()
                _pwrite_all(self.fd, view[:length], offset)
        else:
            _pwrite_all(self.fd, view[:length], offset)
        for k, (mh, n) in enumerate(chunks):
            self.rows.append((mh, self.name, offset + k * CHUNK_SIZE, n))
        self.end = max(self.end, offset + length)

    def append(self, mh: bytes, data: bytes | memoryview) -> None:
        """Write a block of any size at the end of the pack (buffered writes)."""
        if self.fd < 0:
            self._open()
        _pwrite_all(self.fd, memoryview(data), self.end)
        self.rows.append((mh, self.name, self.end, len(data)))
        self.end += len(data)

    def _to_buffered(self) -> None:
        """The filesystem refused an O_DIRECT write (alignment): buffered writes from now on."""
        os.close(self.fd)
        self.fd, self.direct = self.lock_fd, False
        self.store._direct_ok = False

    def commit(self) -> None:
        if self.fd < 0:
            return  # every block was already stored
        store = self.store
        final = store.packs_dir / self.name
        os.ftruncate(self.lock_fd, self.end)  # drops the padding of an O_DIRECT tail
        # The trailer makes the pack self-describing, so the index can be rebuilt from the packs alone
        # (LocalStore.reindex_packs). Buffered (lock_fd): it is not 4 KiB aligned.
        _pwrite_all(self.lock_fd, memoryview(_pack_trailer(self.rows, self.end)), self.end)
        os.fsync(self.lock_fd)  # the file's data (through either descriptor) and size
        os.replace(self.path, final)
        self.path, self.renamed = final, True
        _fsync_path(store.packs_dir)
        store._upgrade_marker()
        self.inserted, self.committed = store._insert_packed(self.rows, self.name)
        if not self.committed:  # no row names this pack: every block had a copy elsewhere first
            self._unlink()  # still under the lock: nobody may index it meanwhile
        self._close()

    def abort(self) -> None:
        """Undo an unfinished write. Keeps the pack if its rows went in (an interruption after the commit)."""
        keep = self.committed
        if self.renamed and not keep:  # in packs/: its rows may have gone in before the interruption
            try:
                keep = self.store._pack_referenced(self.name)
            except (StoreError, sqlite3.Error):
                keep = True  # cannot tell: keep it; clean_tmp re-indexes or deletes it later
        if not keep:
            self._unlink()  # before the lock goes: only the lock's holder inserts rows naming a pack
        self._close()

    def _close(self) -> None:
        for fd in {self.fd, self.lock_fd} - {-1}:
            os.close(fd)
        self.fd = self.lock_fd = -1

    def _unlink(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


class LocalStore:
    """A blockstore directory with an SQLite result index (see the module docstring).

    Args:
        root: the store directory; created on the first write.
        workers: threads that read and hash chunks of large files while the calling thread writes them
            in order (default: one per CPU, at most 8).
    """

    def __init__(self, root: str | os.PathLike, workers: int | None = None):
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        self.packs_dir = self.root / "packs"
        self.index_path = self.root / "index.sqlite"
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._thread_local = threading.local()
        self._init_lock = threading.Lock()
        self._direct_ok = bool(_O_DIRECT) and os.environ.get("GREENBENCH_STORE_NO_DIRECT") != "1"
        self._ready = False
        self._ready_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the index file initialised here
        self._version = STORE_VERSION
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
            raise _os_error(exc, "read", marker) from None
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
        if self._ready:
            return
        try:
            self.blocks_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(exist_ok=True)
            if not (self.root / _MARKER).exists():
                self._write_marker()
        except OSError as exc:
            raise _os_error(exc, "create the store in", self.root) from None
        self._ready = True

    def _write_marker(self) -> None:
        body = json.dumps(
            {"layout": "blocks/<shard>/<base32 multihash> + packs/<name>.pack", "version": STORE_VERSION}, sort_keys=True
        )
        tmp = self._write_temp(body.encode())
        os.replace(tmp, self.root / _MARKER)
        _fsync_path(self.root)
        self._version = STORE_VERSION

    def block_path(self, cid: CID) -> Path:
        """Where the block for ``cid`` lives (whether or not it is there)."""
        key = mf.b32encode(cid.multihash)
        return self.blocks_dir / key[-3:-1] / key

    def _present(self, cid: CID, size: int) -> bool:
        """True when the block is already stored, as a file or in a pack (either is complete)."""
        try:
            if self.block_path(cid).stat().st_size == size:
                return True
        except OSError:
            pass
        row = self._packed(cid.multihash)
        return row is not None and row[2] == size

    # --- packs -------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's connection for block lookups, or None while the store has no index.

        Reopened when the index file is replaced or removed under a long-lived handle (a server), so it
        never reads a deleted file while other processes write the new one.
        """
        local = self._thread_local
        conn = getattr(local, "conn", None)
        ident = _file_id(self.index_path)
        if conn is not None and local.ident != ident:
            conn.close()
            conn = local.conn = None
        if conn is None:
            if ident is None and not self._has_packs():
                return None
            conn = self._connect()  # initialises a new index file (and, with packs but no rows, rebuilds it)
            local.conn, local.ident = conn, _file_id(self.index_path)
        return conn

    def _packed(self, mh: bytes) -> tuple[str, int, int] | None:
        """``(pack name, offset, length)`` of a packed block, or None."""
        conn = self._reader()
        if conn is None:
            return None
        try:
            return conn.execute("SELECT pack, offset, length FROM packed WHERE mh = ?", (mh,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # an index made before packs existed
                return None
            raise StoreError(f"cannot read the index {self.index_path}: {exc}", _INDEX_HINT) from None
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the index {self.index_path}: {exc}", _INDEX_HINT) from None

    def _pack_path(self, name: str) -> Path:
        if not _PACK_NAME.fullmatch(name):
            raise StoreError(f"the index {self.index_path} names a pack {name!r} outside the store; refusing to read it")
        return self.packs_dir / name

    def _read_packed(self, cid: CID) -> tuple[bytes, str, str] | None:
        """The packed block's bytes, where they were read, and the pack's name; None if it is not packed."""
        row = self._packed(cid.multihash)
        if row is None:
            return None
        name, offset, length = row
        path = self._pack_path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if not self.packs_dir.is_dir():  # the whole directory is gone (unmounted, being moved): keep the rows
                raise StoreError(
                    f"block {cid} is in {path}, but {self.packs_dir} is missing",
                    "restore or mount the store's packs directory",
                ) from None
            self._forget_packed(None, name)
            raise VerificationError(
                f"block {cid} was indexed in {path}, which is missing; the index entries of that pack were removed",
                _REPAIR_HINT,
            ) from None
        except OSError as exc:
            raise _os_error(exc, "read", path) from None
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise _os_error(exc, "read", path) from None
        finally:
            os.close(fd)
        return data, f"{path} at offset {offset}", name

    def _forget_packed(self, mh: bytes | None, pack: str) -> None:
        """Drop the index row of a damaged packed block (``mh`` None: every row of a missing pack), so the
        block reads as missing and the next put or import stores a good copy; a row that stayed would
        make every writer skip the block as present."""
        conn = self._connect()
        try:
            if mh is None:
                conn.execute("DELETE FROM packed WHERE pack = ?", (pack,))
            else:
                conn.execute("DELETE FROM packed WHERE mh = ? AND pack = ?", (mh, pack))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the index {self.index_path}: {exc}") from None
        finally:
            conn.close()

    def _pack_files(self) -> list[Path]:
        return [entry for entry in _entries(self.packs_dir) if _PACK_NAME.fullmatch(entry.name)]

    def _has_packs(self) -> bool:
        try:
            with os.scandir(self.packs_dir) as it:
                return any(_PACK_NAME.fullmatch(entry.name) for entry in it)
        except OSError:
            return False

    def reindex_packs(self) -> int:
        """Rebuild the index of packed blocks from the packs' own trailers; returns the blocks indexed.

        Runs by itself when a store with packs has an empty (lost, recreated) index. Every block is read
        and verified against its multihash first: a damaged one is left out (it then reads as missing,
        and storing it again repairs it). The result index is not rebuilt (publish the results again).
        """
        return self._reindex_unlocked_packs()

    def _reindex_unlocked_packs(self, conn: sqlite3.Connection | None = None) -> int:
        """Index every pack nobody holds the lock of, each under its lock, one transaction each (a
        writer holding a pack's lock inserts its rows itself, or deletes the pack)."""
        n = 0
        for path in self._pack_files():
            with _locked(path) as locked:
                if locked:
                    rows = self._verified_pack_rows(path)
                    if rows:
                        n += self._insert_packed(rows, conn=conn)[0]
        return n

    def _verified_pack_rows(self, path: Path) -> list[tuple[bytes, str, int, int]]:
        """The rows of a pack's trailer whose blocks verify; [] for a pack without a valid trailer."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_error(exc, "read", path) from None
        try:
            rows = []
            for mh, offset, length in _read_trailer(fd, os.fstat(fd).st_size):
                cid = _raw_cid(mh)
                if cid is not None and cid.can_verify and cid.verify(os.pread(fd, length, offset)):
                    rows.append((mh, path.name, offset, length))
            return rows
        except OSError as exc:
            raise _os_error(exc, "read", path) from None
        finally:
            os.close(fd)

    def _insert_packed(
        self, rows: list[tuple[bytes, str, int, int]], pack: str | None = None, conn: sqlite3.Connection | None = None
    ) -> tuple[int, bool]:
        """Add ``packed`` rows in one transaction (one WAL sync; autocommit would sync every row), the
        first copy of a block winning. Returns how many went in, and whether any row names ``pack``
        afterwards (its own, or ones a concurrent re-index put in)."""
        own = conn is None
        if conn is None:
            conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO packed (mh, pack, offset, length) VALUES (?, ?, ?, ?)", rows)
                inserted = conn.total_changes - before
                referenced = pack is not None and _names_pack(conn, pack)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the index {self.index_path}: {exc}") from None
        finally:
            if own:
                conn.close()
        return inserted, referenced

    def _pack_referenced(self, pack: str) -> bool:
        conn = self._reader()
        if conn is None:
            return False
        try:
            return _names_pack(conn, pack)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the index {self.index_path}: {exc}") from None

    def _upgrade_marker(self) -> None:
        """Mark a version-1 store as version 2 before its first pack becomes visible."""
        if self._version != STORE_VERSION:
            self._write_marker()

    def _write_temp(self, data: bytes | memoryview) -> str:
        """A durable (fsynced) temporary file in ``tmp/`` holding ``data``; returns its path."""
        if len(data) >= _DIRECT_MIN and len(data) % _DIRECT_ALIGN == 0 and self._direct_ok:
            tmp = self._write_temp_direct(data)
            if tmp is not None:
                return tmp
        fd, tmp = tempfile.mkstemp(prefix="blk-", suffix=".tmp", dir=self.tmp_dir)
        try:
            _write_all(fd, data)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _aligned_buffer(self, size: int = CHUNK_SIZE):
        """This thread's page-aligned buffer (an anonymous mmap) of at least ``size`` bytes."""
        import mmap

        local = self._thread_local
        buf = getattr(local, "buf", None)
        if buf is None or len(buf) < size:
            buf = local.buf = mmap.mmap(-1, max(size, CHUNK_SIZE))
        return buf

    def _write_temp_direct(self, data: bytes | memoryview) -> str | None:
        """Write a large, block-aligned chunk with O_DIRECT, past the page cache.

        On some hosts (this project's VMs among them) buffered writes of large files cost several times
        more than hashing them, while O_DIRECT writes run at the device's speed
        (tests/benchmarks/bench_store.py). The copy into a page-aligned buffer (O_DIRECT needs one) is
        cheap beside that. Returns None where the filesystem refuses O_DIRECT (tmpfs on older kernels,
        some network filesystems), and the store then stays on buffered writes. The file is fsynced
        before it is returned, as a buffered one is.
        """
        buf = self._aligned_buffer(len(data))
        buf[: len(data)] = data
        name = os.path.join(self.tmp_dir, f"blk-{os.urandom(8).hex()}.tmp")
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                self._direct_ok = False
                return None
            raise
        done = False
        try:
            with memoryview(buf)[: len(data)] as view:
                try:
                    _write_all(fd, view)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._direct_ok = False  # alignment refused: buffered writes from now on
                    return None
            os.fsync(fd)
            done = True
            return name
        finally:
            os.close(fd)
            if not done:
                try:
                    os.unlink(name)
                except OSError:
                    pass

    def _store(self, cid: CID, data: bytes | memoryview) -> bool:
        """Atomically and durably store one block already known to match ``cid``. True if new."""
        if cid.hash_code == IDENTITY:
            return False
        if self._present(cid, len(data)):
            return False
        path = self.block_path(cid)
        self._ensure()
        try:
            tmp = self._write_temp(data)
            try:
                os.replace(tmp, path)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            _fsync_path(path.parent)
        except OSError as exc:
            raise _os_error(exc, "write a block to", self.root) from None
        return True

    # --- blocks ------------------------------------------------------------------------------

    def put_block(self, data: bytes | bytearray | memoryview, codec: str | int = "raw") -> CID:
        """Store ``data`` as one block and return its CIDv1 (sha2-256).

        DAG-JSON and DAG-CBOR blocks are decoded first, so the store never holds an undecodable one.

        Raises:
            StoreError: larger than :data:`BLOCK_LIMIT`, undecodable for its codec, or the store is not writable.
        """
        if len(data) > BLOCK_LIMIT:
            raise StoreError(
                f"block of {len(data)} bytes exceeds the {BLOCK_LIMIT}-byte block limit",
                "store large data with put_file / `greenbench store put`, which chunks it",
            )
        code = mf.codec_code(codec)
        if code == DAG_JSON:
            dagjson.decode(data)
        elif code == DAG_CBOR:
            dagcbor.decode(data)
        cid = cid_for(data, code)
        self._store(cid, data)
        return cid

    def put_verified(self, cid: CID | str, data: bytes | bytearray | memoryview) -> CID:
        """Store a block under a CID someone else computed, after checking the bytes match it.

        Raises:
            VerificationError: the bytes do not hash to ``cid`` (exit 1; nothing stored).
            StoreError: a hash function greenbench cannot check, or a block over :data:`IMPORT_BLOCK_LIMIT`.
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
        self._store(cid, data)
        return cid

    def has(self, cid: CID | str) -> bool:
        """True when the block is in the store (identity CIDs always are)."""
        cid = CID.decode(cid)
        return cid.hash_code == IDENTITY or self.block_path(cid).is_file() or self._packed(cid.multihash) is not None

    def get_block(self, cid: CID | str) -> bytes:
        """The block's bytes, re-hashed against ``cid`` on every read.

        Raises:
            BlockNotFoundError: no such block (exit 2).
            VerificationError: the stored bytes no longer match (exit 1).
        """
        cid = CID.decode(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        path = self.block_path(cid)
        where, pack = str(path), None
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            packed = self._read_packed(cid)
            if packed is None:
                raise BlockNotFoundError(
                    f"block {cid} is not in the store {self.root}",
                    "check the CID, or pass --store DIR / GREENBENCH_STORE for the store that has it",
                ) from None
            data, where, pack = packed
        except OSError as exc:
            raise _os_error(exc, "read", path) from None
        if not cid.can_verify:
            raise StoreError(f"cannot verify block {cid}: hash function {cid.hash_name} is not supported")
        if not cid.verify(data):
            if pack is None:
                raise VerificationError(
                    f"block {cid} in {where} is corrupted: its bytes no longer match the CID",
                    "delete that file and import the block again from a good copy",
                )
            self._forget_packed(cid.multihash, pack)
            raise VerificationError(
                f"block {cid} in {where} is corrupted: its bytes no longer match the CID; its index entry was removed",
                _REPAIR_HINT,
            )
        return data

    def iter_cids(self) -> Iterator[CID]:
        """Every stored block (files, then packed blocks) as a raw-codec CIDv1 (the store keeps multihashes, not codecs)."""
        for shard in _entries(self.blocks_dir):
            if not shard.is_dir():
                continue  # a stray file (.DS_Store, ...)
            for entry in _entries(shard):
                try:
                    cid = _raw_cid(mf.b32decode(entry.name))
                except StoreError:  # not a block (a stray file)
                    continue
                if cid is not None:
                    yield cid
        conn = self._reader()
        if conn is None:
            return
        try:
            rows = conn.execute("SELECT mh FROM packed ORDER BY mh").fetchall()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return
            raise StoreError(f"cannot read the index {self.index_path}: {exc}", _INDEX_HINT) from None
        for (mh,) in rows:
            cid = _raw_cid(mh)
            if cid is not None and not self.block_path(cid).is_file():
                yield cid

    # --- files -------------------------------------------------------------------------------

    def put_file(self, source: str | os.PathLike | BinaryIO, progress: Progress | None = None) -> CID:
        """Store a file (path or binary stream): one raw block up to 1 MiB, else a chunked file.

        Args:
            progress: for a chunked file, called as ``progress(bytes_done, total_bytes)`` after each chunk
                (``total_bytes`` None for a stream of unknown length), from the calling thread.

        Returns:
            The raw block's CID, or the chunked-file root's CID (dag-json).

        Raises:
            StoreError: the file cannot be read, or the store cannot be written.
        """
        if isinstance(source, (str, os.PathLike)):
            with open_input(source) as fh:
                return self._put_stream(fh, str(source), progress)
        return self._put_stream(source, getattr(source, "name", "<stream>"), progress)

    def _read_chunk(self, fh: BinaryIO, name: str) -> bytes:
        return read_up_to(fh, CHUNK_SIZE, name)

    def _put_stream(self, fh: BinaryIO, name: str, progress: Progress | None) -> CID:
        regular = _regular_file(fh)
        if regular is not None and regular[2] > CHUNK_SIZE:
            fd, start, size = regular
            return self._put_regular(fd, start, size, name, progress)
        first = self._read_chunk(fh, name)
        if len(first) < CHUNK_SIZE:
            return self.put_block(first)
        second = self._read_chunk(fh, name)
        if not second:
            return self.put_block(first)

        def chunks() -> Iterator[bytes]:
            yield first
            yield second
            while chunk := self._read_chunk(fh, name):
                yield chunk

        def copy(chunk: bytes, buf: Any) -> int:
            buf[: len(chunk)] = chunk
            return len(chunk)

        return self._put_chunks(chunks(), name, copy, None, progress)

    def _put_regular(self, fd: int, start: int, size: int, name: str, progress: Progress | None) -> CID:
        """Chunk a regular file: the workers pread and hash chunks in parallel."""

        def read_at(offset: int, buf: Any) -> int:
            # Read straight into a page-aligned buffer: hashed there and, with O_DIRECT, written from
            # there, so the chunk is never copied in user space.
            want = min(CHUNK_SIZE, start + size - offset)
            try:
                got = os.preadv(fd, [memoryview(buf)[:want]], offset)
            except OSError as exc:
                raise StoreError(f"cannot read {name}: {exc.strerror or exc}") from None
            if got != want:
                raise StoreError(f"{name} changed while it was being stored (shorter than {size} bytes)")
            return want

        return self._put_chunks(range(start, start + size, CHUNK_SIZE), name, read_at, size, progress)

    def _put_chunks(self, jobs: Iterable[Any], name: str, load, size: int | None, progress: Progress | None) -> CID:
        """Store the chunks ``load(job, buffer) -> length`` in one pack, then write the root.

        A pipeline over a ring of 1 MiB slots in one page-aligned buffer (chunk ``i`` in slot
        ``i % slots``): the workers fill and hash slots in parallel (hashlib releases the GIL), and this
        thread writes the chunks in order as soon as they are hashed, up to :data:`_WRITE_RUN` of them
        (consecutive, already hashed) in one call, then reuses their slots. One sequential writer
        measured faster than a writer in every worker, and fewer, larger writes faster again, on a
        disk whose writes wait on the CPUs the hashing keeps busy (tests/benchmarks/bench_store.py).
        Memory stays at ``slots`` MiB whatever the file size.
        """
        import mmap

        self._ensure()
        slots = _BUFFERS_PER_WORKER * self.workers
        ring = mmap.mmap(-1, slots * CHUNK_SIZE)
        view = memoryview(ring)
        chunks: list[CID] = []
        seen: set[bytes] = set()
        total = 0
        max_chunks = _max_chunks()

        def slot(index: int) -> memoryview:
            start = (index % slots) * CHUNK_SIZE
            return view[start : start + CHUNK_SIZE]

        def hash_chunk(index: int, job: Any) -> tuple[CID, int, bool]:
            buf = slot(index)
            n = load(job, buf)
            cid = CID(1, RAW, SHA2_256, hashlib.sha256(buf[:n]).digest())
            return cid, n, self._present(cid, n)  # looked up here, in parallel, not in the writing thread

        def write(run: list[tuple[int, bytes, int]]) -> None:
            if run:
                first = run[0][0]
                pack.write(first, view[(first % slots) * CHUNK_SIZE :], [(mh, n) for _, mh, n in run])
                run.clear()

        # The pool exits (its workers done with the ring) before the pack commits or aborts.
        with self._new_pack(direct=True, what="write blocks to") as pack, ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="gb-store"
        ) as pool:
            inflight: deque = deque()
            todo = enumerate(jobs)
            try:
                while True:
                    # Refill every free slot (a slot is free once its chunk is written or skipped).
                    while len(inflight) < slots and (item := next(todo, None)) is not None:
                        index, job = item
                        if index >= max_chunks:
                            raise StoreError(
                                f"{name} is larger than a chunked file can be "
                                f"({max_chunks} chunks of {CHUNK_SIZE} bytes)",
                                "split the file, or publish it to IPFS with Kubo (`ipfs add`)",
                            )
                        inflight.append((index, pool.submit(hash_chunk, index, job)))
                    if not inflight:
                        break
                    # The oldest chunk (waiting for it), then the ones after it that are already hashed.
                    run: list[tuple[int, bytes, int]] = []
                    taken = 0
                    while inflight and taken < _WRITE_RUN:
                        index, future = inflight[0]
                        if taken and (not future.done() or index % slots == 0):  # not ready, or the ring wraps
                            break
                        inflight.popleft()
                        taken += 1
                        cid, n, present = future.result()
                        chunks.append(cid)
                        total += n
                        if present or cid.multihash in seen:
                            write(run)  # a hole in the pack: the run stops here
                        else:
                            run.append((index, cid.multihash, n))
                        seen.add(cid.multihash)
                    write(run)
                    if progress is not None:
                        progress(total, size)
            except BaseException:
                for _, future in inflight:
                    future.cancel()
                raise
        root = dagjson.encode({"chunk_size": CHUNK_SIZE, "chunks": chunks, "kind": CHUNKED_FILE_KIND, "size": total})
        cid = cid_for(root, DAG_JSON)  # encoded here and at most _max_chunks() links: no need to decode it again
        self._store(cid, root)
        return cid

    @contextmanager
    def _new_pack(self, direct: bool, what: str) -> Iterator[_Pack]:
        """A pack for one write: committed when the block ends, aborted on any error (an OSError
        becomes a StoreError saying it could not ``what`` the store)."""
        pack = _Pack(self, direct)
        try:
            yield pack
            pack.commit()
        except OSError as exc:
            pack.abort()
            raise _os_error(exc, what, self.root) from None
        except BaseException:
            pack.abort()
            raise

    def cat(self, cid: CID | str, precheck: bool = False) -> Iterator[bytes]:
        """The bytes addressed by ``cid``: a chunked file's chunks in order, else the block itself.

        Every block is verified as it is read (see :meth:`get_block`).

        Args:
            precheck: for a chunked file, first read and verify every chunk (and the total size) before
                yielding anything, so a consumer that cannot take bytes back (stdout) never receives
                part of a file that then fails. Costs a second read of the chunks.
        """
        cid = CID.decode(cid)
        data = self.get_block(cid)
        root = _chunked_root(cid, data)
        if root is None:
            yield data
            return
        if precheck:
            total = sum(len(self.get_block(c)) for c in root["chunks"])
            if total != root["size"]:
                raise VerificationError(f"chunked file {cid}: chunks add up to {total} bytes, the root says {root['size']}")
        total = 0
        for chunk_cid in root["chunks"]:
            chunk = self.get_block(chunk_cid)
            total += len(chunk)
            yield chunk
        if total != root["size"]:
            raise VerificationError(f"chunked file {cid}: chunks add up to {total} bytes, the root says {root['size']}")

    # --- CAR ---------------------------------------------------------------------------------

    def import_car(self, source: str | os.PathLike | bytes | BinaryIO) -> ImportResult:
        """Import every block of a CAR (v1, or the inner v1 of a v2), all or nothing.

        Every block is checked against its CID as it is read, and the new ones are written to a pack of
        their own; only when the whole CAR has been read and every block verified does the pack become
        visible (one index transaction).

        Returns:
            The CAR's roots (an :class:`ImportResult`, a ``list[CID]`` with counts).

        Raises:
            StoreError: malformed CAR, an unverifiable hash function, an oversized block (nothing imported).
            VerificationError: a block whose bytes do not match its CID (nothing imported).
        """
        self._ensure()
        seen: set[bytes] = set()
        blocks = nbytes = 0
        with self._new_pack(direct=False, what="import blocks into") as pack:
            with CarReader(source) as reader:
                for section in reader:
                    cid, data = section.cid, section.data
                    blocks += 1
                    nbytes += len(data)
                    if len(data) > IMPORT_BLOCK_LIMIT:
                        raise StoreError(
                            f"{reader.name}: block {cid} at byte offset {section.offset} is {len(data)} bytes, over the "
                            f"{IMPORT_BLOCK_LIMIT}-byte limit; nothing imported"
                        )
                    if not cid.can_verify:
                        raise StoreError(
                            f"{reader.name}: block {cid} at byte offset {section.offset} uses hash function "
                            f"{cid.hash_name}, which greenbench cannot verify; nothing imported"
                        )
                    if not cid.verify(data):
                        raise VerificationError(
                            f"{reader.name}: block {cid} at byte offset {section.offset} does not match its CID; nothing imported",
                            "the CAR is corrupted or was tampered with; fetch it again from a source you trust",
                        )
                    mh = cid.multihash
                    if cid.hash_code != IDENTITY and mh not in seen and not self._present(cid, len(data)):
                        pack.append(mh, data)
                    seen.add(mh)
                roots = list(reader.roots)
        return ImportResult(roots, blocks, pack.inserted, nbytes)

    def walk(self, roots: Iterable[CID | str]) -> Iterator[tuple[CID, bytes]]:
        """Blocks reachable from ``roots`` through dag-json, dag-cbor and dag-pb links, depth first, each once.

        Identity CIDs are not emitted (their data is inside the CID).

        Raises:
            BlockNotFoundError: a reachable block is missing (names the block that links to it).
        """
        seen: set[bytes] = set()
        stack: list[tuple[CID, CID | None]] = [(CID.decode(r), None) for r in reversed(list(roots))]
        while stack:
            cid, parent = stack.pop()
            if cid.hash_code == IDENTITY or cid.multihash in seen:
                continue
            seen.add(cid.multihash)
            try:
                data = self.get_block(cid)
            except BlockNotFoundError:
                if parent is None:
                    raise
                raise BlockNotFoundError(
                    f"block {cid}, linked from {parent}, is not in the store {self.root}",
                    "import the missing blocks (greenbench store car import) before exporting",
                ) from None
            yield cid, data
            stack.extend((child, cid) for child in reversed(_links(cid, data)))

    def export_car(self, roots: Iterable[CID | str], out_path: str | os.PathLike) -> int:
        """Write a CARv1 of ``roots`` and every block reachable from them to ``out_path`` (atomically).

        Returns:
            The number of blocks written.
        """
        roots = [CID.decode(r) for r in roots]
        if not roots:
            raise StoreError("no root CIDs to export", "pass one or more CIDs")
        out = Path(out_path)
        count = 0

        def counted():
            nonlocal count
            for item in self.walk(roots):
                count += 1
                yield item

        with atomic_open(out) as fh:
            write_car(fh, roots, counted())
        return count

    # --- result index ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self._ensure()
        try:
            conn = sqlite3.connect(self.index_path, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the result index {self.index_path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_SQLITE_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")  # a commit is durable before it returns (packs depend on it)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the index {self.index_path}: {exc}", _INDEX_HINT) from None
        # Initialise once per index file: a file lost and made anew (another inode, or no tables yet)
        # is initialised, and rebuilt from the packs, again.
        if _file_id(self.index_path) != self._ready_id or not _has_schema(conn):
            with self._init_lock:
                ident = _file_id(self.index_path)
                if ident != self._ready_id or not _has_schema(conn):
                    self._init_index(conn)
                    self._ready_id = ident
        return conn

    def _init_index(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching a new database to WAL takes an exclusive lock that SQLite's
        busy handler does not wait for, so writers that create the index at once (several processes on
        a new store) retry here until the busy timeout."""
        deadline = time.monotonic() + _SQLITE_TIMEOUT_S
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    conn.close()
                    raise StoreError(f"cannot put the index {self.index_path} in WAL mode (got {mode})")
                conn.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                conn.close()
                raise StoreError(f"cannot initialise the index {self.index_path}: {exc}", _INDEX_HINT) from None
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"cannot initialise the index {self.index_path}: {exc}", _INDEX_HINT) from None
        # Packs, but no packed rows: the index was lost and made anew. A pack always has rows (commit
        # deletes one that has none), so rebuild them from the packs' trailers.
        try:
            if self._has_packs() and conn.execute("SELECT 1 FROM packed LIMIT 1").fetchone() is None:
                self._reindex_unlocked_packs(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot rebuild the index {self.index_path}: {exc}", _INDEX_HINT) from None
        except BaseException:
            conn.close()
            raise

    def index_result(self, cid: CID | str, info: dict[str, Any]) -> None:
        """Add (or replace) the index row of the result stored under ``cid``.

        Args:
            info: ``signer``, ``profile``, ``backend``, ``hardware`` (``cpu_model``, ``gpu_models``),
                ``created`` (ISO 8601 text) and ``metrics`` (``j_per_token``, ``tokens_per_s``, ...).
                The whole dict is kept and returned by :meth:`query_results`.
        """
        cid = CID.decode(cid)
        if not isinstance(info, dict):
            raise StoreError(f"result info for {cid} must be a dict, got {type(info).__name__}")
        hardware = info.get("hardware") or {}
        metrics = info.get("metrics") or {}
        gpus = hardware.get("gpu_models") or []
        if isinstance(gpus, str):
            gpus = [gpus]
        try:
            body = json.dumps(info, sort_keys=True, allow_nan=False, default=str)
        except ValueError as exc:
            raise StoreError(f"result info for {cid} is not JSON: {exc}") from None
        row = (
            str(cid),
            _text(info.get("signer")),
            _text(info.get("profile")),
            _text(info.get("backend")),
            _text(hardware.get("cpu_model")),
            json.dumps(list(gpus)),
            _text(info.get("created")),
            _number(metrics.get("j_per_token")),
            _number(metrics.get("tokens_per_s")),
            body,
        )
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO results (cid, signer, profile, backend, cpu_model, gpu_models, created,"
                    " j_per_token, tokens_per_s, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the result index {self.index_path}: {exc}") from None
        finally:
            conn.close()

    def query_results(self, **filters: Any) -> list[dict[str, Any]]:
        """Indexed results matching every filter, as their ``info`` dicts plus ``"cid"``.

        Filters: ``cid``, ``signer``, ``profile``, ``backend``, ``cpu_model`` (equality); ``gpu_model``
        (one of the result's GPUs); ``created_after`` / ``created_before`` (ISO text, inclusive);
        ``max_j_per_token`` / ``min_tokens_per_s``; ``order_by`` (``created``, ``j_per_token``,
        ``tokens_per_s``, ``profile``; prefix ``-`` for descending; default ``created``); ``limit``.
        A filter whose value is None is ignored.

        Raises:
            StoreError: an unknown filter or ``order_by`` column.
        """
        where: list[str] = []
        args: list[Any] = []
        order_by = filters.pop("order_by", None) or "created"
        limit = filters.pop("limit", None)
        for key, value in filters.items():
            if value is None:
                continue
            if key not in _RESULT_FILTERS:
                raise StoreError(
                    f"unknown result filter {key!r}",
                    f"use {', '.join(_RESULT_FILTERS)}, order_by, limit",
                )
            clause, cast = _RESULT_FILTERS[key]
            where.append(clause)
            try:
                args.append(cast(value))
            except (TypeError, ValueError):
                raise StoreError(f"result filter {key}={value!r} is not a {cast.__name__}") from None
        desc = order_by.startswith("-")
        column = order_by.lstrip("-")
        if column not in ("created", "j_per_token", "tokens_per_s", "profile", "cid"):
            raise StoreError(f"cannot order results by {order_by!r}", "use created, j_per_token, tokens_per_s or profile")
        sql = "SELECT cid, info FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {column} {'DESC' if desc else 'ASC'}, cid ASC"
        if limit is not None:
            sql += " LIMIT ?"
            try:
                args.append(int(limit))
            except (TypeError, ValueError):
                raise StoreError(f"limit must be an integer, got {limit!r}") from None
        if not self.index_path.exists():
            return []
        conn = self._connect()
        try:
            rows = conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot query the result index {self.index_path}: {exc}") from None
        finally:
            conn.close()
        out = []
        for cid, body in rows:
            info = json.loads(body)
            info["cid"] = cid
            out.append(info)
        return out

    # --- housekeeping ------------------------------------------------------------------------

    def clean_tmp(self, older_than_s: float = 24 * 3600) -> int:
        """Tidy up after writers that crashed (files older than ``older_than_s``). Returns the files deleted.

        Temporary files in ``tmp/`` (unfinished packs among them) are deleted unless a live writer holds
        their lock. A pack in ``packs/`` that no index row names (its writer died between moving it
        there and committing its rows) is complete and self-describing: it is re-indexed from its
        trailer, every block verified, and deleted only if that leaves it without rows (every block had
        a copy elsewhere, or none verifies).
        """
        removed = 0
        cutoff = time.time() - older_than_s

        def old(entry: Path) -> bool:
            try:
                return entry.stat().st_mtime < cutoff
            except OSError:
                return False

        for entry in _entries(self.tmp_dir):
            if old(entry):
                with _locked(entry) as locked:
                    if locked and _unlink(entry):
                        removed += 1
        for entry in self._pack_files():
            if not old(entry) or self._pack_referenced(entry.name):
                continue
            with _locked(entry) as locked:  # a writer holds its pack's lock until the rows are in
                if not locked:
                    continue
                rows = self._verified_pack_rows(entry)
                if rows and self._insert_packed(rows, entry.name)[1]:
                    continue
                if not self._pack_referenced(entry.name) and _unlink(entry):
                    removed += 1
        return removed


def _entries(directory: Path) -> list[Path]:
    """A directory's entries, sorted; [] if it does not exist."""
    try:
        return sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _os_error(exc, "list", directory) from None


@contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` if nobody else does (yields False if taken, or gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


_SCHEMA = """
CREATE TABLE IF NOT EXISTS packed (
    mh BLOB PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packed_pack ON packed (pack);
CREATE TABLE IF NOT EXISTS results (
    cid TEXT PRIMARY KEY,
    signer TEXT,
    profile TEXT,
    backend TEXT,
    cpu_model TEXT,
    gpu_models TEXT NOT NULL DEFAULT '[]',
    created TEXT,
    j_per_token REAL,
    tokens_per_s REAL,
    info TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_signer ON results (signer);
CREATE INDEX IF NOT EXISTS results_profile ON results (profile, backend);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
"""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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


_TRAILER_MAGIC = b"GBPACK\x00\x01"
_TRAILER_FOOTER = 24  # magic, then the rows' offset and length as little-endian uint64


def _pack_trailer(rows: list[tuple[bytes, str, int, int]], at: int) -> bytes:
    """The trailer a pack ends with: its rows (varint length + multihash, varint offset, varint length),
    then the footer."""
    body = bytearray()
    for mh, _, offset, length in rows:
        body += mf.encode_varint(len(mh)) + mh + mf.encode_varint(offset) + mf.encode_varint(length)
    return bytes(body) + _TRAILER_MAGIC + at.to_bytes(8, "little") + len(body).to_bytes(8, "little")


def _read_trailer(fd: int, size: int) -> list[tuple[bytes, int, int]]:
    """The ``(multihash, offset, length)`` rows of a pack's trailer; [] for a pack without a valid one
    (a writer died before committing it)."""
    if size < _TRAILER_FOOTER:
        return []
    footer = os.pread(fd, _TRAILER_FOOTER, size - _TRAILER_FOOTER)
    if footer[:8] != _TRAILER_MAGIC:
        return []
    at, length = int.from_bytes(footer[8:16], "little"), int.from_bytes(footer[16:24], "little")
    if at + length + _TRAILER_FOOTER != size:
        return []
    body = os.pread(fd, length, at)
    rows, pos = [], 0
    try:
        while pos < len(body):
            n, pos = mf.decode_varint(body, pos)
            mh, pos = body[pos : pos + n], pos + n
            offset, pos = mf.decode_varint(body, pos)
            block_len, pos = mf.decode_varint(body, pos)
            if len(mh) != n or offset + block_len > at:
                return []
            rows.append((bytes(mh), offset, block_len))
    except StoreError:
        return []
    return rows


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(exc, "read", path) from None
    return st.st_dev, st.st_ino


def _has_schema(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'packed'").fetchone() is not None
    except sqlite3.Error:
        return False


def _names_pack(conn: sqlite3.Connection, pack: str) -> bool:
    return conn.execute("SELECT 1 FROM packed WHERE pack = ? LIMIT 1", (pack,)).fetchone() is not None


def _raw_cid(mh: bytes) -> CID | None:
    """A raw-codec CIDv1 for a stored multihash, or None if the bytes are not a multihash."""
    try:
        code, pos = mf.decode_varint(mh, 0)
        length, pos = mf.decode_varint(mh, pos)
    except StoreError:
        return None
    return CID(1, RAW, code, mh[pos:]) if len(mh) - pos == length else None


def _max_chunks() -> int:
    link = len('{"/":"b') + len(mf.b32encode(bytes(36))) + len('"},')
    return (BLOCK_LIMIT - 200) // link


def _chunked_root(cid: CID, data: bytes) -> dict | None:
    """The decoded root if ``data`` is a greenbench chunked-file root, else None."""
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


def _links(cid: CID, data: bytes) -> list[CID]:
    if cid.codec == DAG_JSON:
        return dagjson.links(dagjson.decode(data))
    if cid.codec == DAG_CBOR:
        return dagcbor.links(dagcbor.decode(data))
    if cid.codec == DAG_PB:
        return dagpb.links(data)
    return []


def open_store(option: str | os.PathLike | None = None) -> LocalStore:
    """The store named by ``--store DIR``, else ``GREENBENCH_STORE``, else the user data dir."""
    return LocalStore(default_store_dir(option))
