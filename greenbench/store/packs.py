"""Packs: the new blocks of one write, in one file ``packs/<name>.pack``, found through the index.

Terms:
    pack: one sequential file instead of one file per block. Creating and syncing hundreds of block
        files cost more than hashing them (tests/benchmarks/bench_store.py), and a CAR of 100,000 small
        blocks imports as one file. A file's pack has leaf ``i`` at byte offset ``i * LEAF_SIZE`` (the
        stored file itself, with holes where a leaf was already stored), then the file's UnixFS nodes;
        a CAR import's pack has the CAR's new blocks end to end.
    trailer: every pack ends with the list of its blocks (multihash, offset, length) and a 24-byte
        footer (magic, then the list's offset and length as little-endian uint64), so a lost index is
        rebuilt from the packs alone.
    pack lock: a pack is written in ``tmp/`` under an exclusive ``flock`` that its writer keeps until the
        pack's rows are in the index (or the pack is deleted): only the holder of a pack's lock inserts
        rows naming it or deletes it, and re-indexing and ``store gc`` skip locked packs.

A pack becomes visible in these steps: truncate (drops an O_DIRECT tail's padding), append the trailer,
fsync, rename into ``packs/``, fsync that directory, and only then insert its rows (one transaction).
A pack no row names afterwards (another writer committed the same blocks first) is deleted. An error or
Ctrl-C before the rows are in deletes the pack; one after leaves it, since it is visible.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from greenbench.errors import StoreError
from greenbench.store import multiformats as mf
from greenbench.store.blockfiles import DIRECT_ALIGN, O_DIRECT, entries, fsync_path, os_error, pwrite_all
from greenbench.store.cid import RAW, CID

if TYPE_CHECKING:
    from greenbench.store.index import Index

__all__ = ["Pack", "Packs", "PACK_NAME", "locked", "read_trailer", "pack_trailer", "raw_cid"]

PACK_NAME = re.compile(r"[0-9a-f]{32}\.pack")
_TRAILER_MAGIC = b"GBPACK\x00\x01"
_TRAILER_FOOTER = 24

Row = tuple[bytes, str, int, int]  # (multihash, pack name, offset, length)


def raw_cid(mh: bytes) -> CID | None:
    """A raw-codec CIDv1 for a stored multihash, or None if the bytes are not a multihash."""
    try:
        code, pos = mf.decode_varint(mh, 0)
        length, pos = mf.decode_varint(mh, pos)
    except StoreError:
        return None
    return CID(1, RAW, code, mh[pos:]) if len(mh) - pos == length else None


def pack_trailer(rows: list[Row], at: int) -> bytes:
    """The trailer a pack ends with: its rows (varint length + multihash, varint offset, varint length),
    then the footer."""
    body = bytearray()
    for mh, _, offset, length in rows:
        body += mf.encode_varint(len(mh)) + mh + mf.encode_varint(offset) + mf.encode_varint(length)
    return bytes(body) + _TRAILER_MAGIC + at.to_bytes(8, "little") + len(body).to_bytes(8, "little")


def read_trailer(fd: int, size: int) -> list[tuple[bytes, int, int]]:
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


@contextmanager
def locked(path: Path) -> Iterator[bool]:
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


def unlink(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


class Packs:
    """The ``packs/`` directory of a store: reading blocks from packs, listing, verifying, re-indexing.

    Args:
        root: the store directory.
        index: the store's index (rows name packs).
        blockfiles: the store's block files (shares ``tmp/`` and the O_DIRECT switch).
    """

    def __init__(self, root: Path, index: "Index", blockfiles):
        self.dir = root / "packs"
        self.tmp_dir = root / "tmp"
        self.index = index
        self.blockfiles = blockfiles

    def path(self, name: str) -> Path:
        if not PACK_NAME.fullmatch(name):
            raise StoreError(f"the index {self.index.path} names a pack {name!r} outside the store; refusing to read it")
        return self.dir / name

    def read(self, name: str, offset: int, length: int) -> bytes | None:
        """A block's bytes from a pack; None when the pack is missing (but the directory is there).

        Raises:
            StoreError: the packs directory itself is missing (unmounted, being moved), or a read fails.
        """
        path = self.path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if not self.dir.is_dir():
                raise StoreError(
                    f"the index names blocks in {path}, but {self.dir} is missing",
                    "restore or mount the store's packs directory",
                ) from None
            return None
        except OSError as exc:
            raise os_error(exc, "read", path) from None
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            raise os_error(exc, "read", path) from None
        finally:
            os.close(fd)

    def files(self) -> list[Path]:
        return [entry for entry in entries(self.dir) if PACK_NAME.fullmatch(entry.name)]

    def any(self) -> bool:
        try:
            with os.scandir(self.dir) as it:
                return any(PACK_NAME.fullmatch(entry.name) for entry in it)
        except OSError:
            return False

    def trailer_rows(self, path: Path) -> list[tuple[bytes, int, int]]:
        """The rows a pack's trailer lists ([] without a valid trailer, or when the pack is gone)."""
        return _reading(path, lambda fd: read_trailer(fd, os.fstat(fd).st_size))

    def verified_rows(self, path: Path) -> list[Row]:
        """The rows of a pack's trailer whose blocks verify; [] for a pack without a valid trailer."""

        def verified(fd: int) -> list[Row]:
            rows = []
            for mh, offset, length in read_trailer(fd, os.fstat(fd).st_size):
                cid = raw_cid(mh)
                if cid is not None and cid.can_verify and cid.verify(os.pread(fd, length, offset)):
                    rows.append((mh, path.name, offset, length))
            return rows

        return _reading(path, verified)

    def reindex_unlocked(self, conn=None) -> int:
        """Index every pack nobody holds the lock of, each under its lock, one transaction each (a writer
        holding a pack's lock inserts its rows itself, or deletes the pack). Returns the rows added."""
        n = 0
        for path in self.files():
            with locked(path) as ok:
                if ok:
                    rows = self.verified_rows(path)
                    if rows:
                        n += self.index.insert_packed(rows, conn=conn)[0]
        return n

    @contextmanager
    def writing(
        self, direct: bool, what: str, before_visible: Callable[[], None], replace: bool = False
    ) -> Iterator["Pack"]:
        """A pack for one write: committed when the block ends, aborted on any error (an OSError becomes
        a StoreError saying it could not ``what`` the store). ``before_visible`` runs after the pack is
        complete and before its rows go in (the store upgrades its layout marker there); with ``replace``
        its rows replace the rows of the same blocks (gc moving blocks out of a mostly dead pack)."""
        pack = Pack(self, direct, before_visible)
        pack.replace = replace
        try:
            yield pack
            pack.commit()
        except OSError as exc:
            pack.abort()
            raise os_error(exc, what, self.dir.parent) from None
        except BaseException:
            pack.abort()
            raise


class Pack:
    """New blocks of one write in a pack of their own (module docstring).

    Args:
        direct: try O_DIRECT for :meth:`write` (page-aligned buffers written at aligned offsets).
    """

    def __init__(self, packs: Packs, direct: bool, before_visible: Callable[[], None]):
        self.packs = packs
        self.name = f"{os.urandom(16).hex()}.pack"
        self.path = packs.tmp_dir / self.name
        self.lock_fd = -1  # buffered descriptor holding the flock (and writing what is not aligned)
        self.fd = -1  # the data descriptor: O_DIRECT where possible, else lock_fd
        self.want_direct = direct
        self.direct = False
        self.before_visible = before_visible
        self.rows: list[Row] = []
        self.end = 0
        self.inserted = 0
        self.renamed = False
        self.committed = False
        self.replace = False

    def _open(self) -> None:
        packs = self.packs
        # The index exists before any pack does: packs without an index always mean a lost index.
        packs.index.connect().close()
        if not packs.dir.is_dir():
            packs.dir.mkdir(exist_ok=True)
            fsync_path(packs.dir.parent)
        self.lock_fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)  # gc leaves a locked pack alone
        self.fd = self.lock_fd
        if self.want_direct and packs.blockfiles.direct_ok:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | O_DIRECT)
                self.direct = True
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                packs.blockfiles.direct_ok = False  # this filesystem refuses O_DIRECT: buffered from now on

    def write_at(self, offset: int, view: memoryview, blocks: list[tuple[bytes, int]]) -> None:
        """Write consecutive blocks back to back at ``offset`` in one call.

        ``blocks`` are their ``(multihash, length)``; their bytes lie back to back at the start of the
        page-aligned ``view``. With O_DIRECT a short last block goes out padded with whatever the buffer
        holds past it, and :meth:`commit` truncates the pack back to its true length.
        """
        if self.fd < 0:
            self._open()
        length = sum(n for _, n in blocks)
        if self.direct:
            try:
                pwrite_all(self.fd, view[: -(-length // DIRECT_ALIGN) * DIRECT_ALIGN], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._to_buffered()
                pwrite_all(self.fd, view[:length], offset)
        else:
            pwrite_all(self.fd, view[:length], offset)
        at = offset
        for mh, n in blocks:
            self.rows.append((mh, self.name, at, n))
            at += n
        self.end = max(self.end, offset + length)

    def append(self, mh: bytes, data: bytes | memoryview) -> None:
        """Write a block of any size at the end of the pack (buffered)."""
        if self.fd < 0:
            self._open()
        pwrite_all(self.lock_fd, memoryview(data), self.end)
        self.rows.append((mh, self.name, self.end, len(data)))
        self.end += len(data)

    def _to_buffered(self) -> None:
        """The filesystem refused an O_DIRECT write (alignment): buffered writes from now on."""
        os.close(self.fd)
        self.fd, self.direct = self.lock_fd, False
        self.packs.blockfiles.direct_ok = False

    def commit(self) -> None:
        if self.fd < 0:
            return  # every block was already stored
        packs = self.packs
        final = packs.dir / self.name
        os.ftruncate(self.lock_fd, self.end)  # drops the padding of an O_DIRECT tail
        pwrite_all(self.lock_fd, pack_trailer(self.rows, self.end), self.end)
        os.fsync(self.lock_fd)  # the file's data (through either descriptor) and size
        os.replace(self.path, final)
        self.path, self.renamed = final, True
        fsync_path(packs.dir)
        self.before_visible()
        self.inserted, self.committed = packs.index.insert_packed(self.rows, self.name, replace=self.replace)
        if not self.committed:  # no row names this pack: every block had a copy elsewhere first
            unlink(self.path)  # still under the lock: nobody may index it meanwhile
        self._close()

    def abort(self) -> None:
        """Undo an unfinished write. Keeps the pack if its rows went in (an interruption after the commit)."""
        keep = self.committed
        if self.renamed and not keep:  # in packs/: its rows may have gone in before the interruption
            try:
                keep = self.packs.index.names_pack(self.name)
            except StoreError:
                keep = True  # cannot tell: keep it; gc re-indexes or deletes it later
        if not keep:
            unlink(self.path)  # before the lock goes: only the lock's holder inserts rows naming a pack
        self._close()

    def _close(self) -> None:
        for fd in {self.fd, self.lock_fd} - {-1}:
            os.close(fd)
        self.fd = self.lock_fd = -1


def _reading(path: Path, read: Callable[[int], list]) -> list:
    """``read(fd)`` of the pack at ``path`` ([] when the pack is gone); a failing read is a StoreError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise os_error(exc, "read", path) from None
    try:
        return read(fd)
    except OSError as exc:
        raise os_error(exc, "read", path) from None
    finally:
        os.close(fd)
