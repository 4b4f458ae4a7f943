"""Block files: one file per block under ``blocks/``, written atomically and durably.

Terms:
    key: the base32 text of a block's multihash; a block file is ``blocks/<shard>/<key>`` where the
        shard is the two characters before the key's last (spreading files over 1,024 directories).
    temporary file: every write goes to ``tmp/`` first (same filesystem), is fsynced, then renamed
        into place and its directory fsynced, so a crash never leaves a visible partial block.
    O_DIRECT: large aligned writes bypass the page cache where the filesystem allows it; on some hosts
        (this project's VMs among them) buffered writes of large files cost several times the hashing
        (tests/benchmarks/bench_store.py). Where the filesystem refuses it, writes stay buffered.
"""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from greenbench.errors import StoreError
from greenbench.store import multiformats as mf

__all__ = ["BlockFiles", "BlockNotFoundError", "fsync_path", "write_all", "pwrite_all", "os_error", "entries", "O_DIRECT", "DIRECT_ALIGN"]

O_DIRECT = getattr(os, "O_DIRECT", 0)
#: O_DIRECT wants sizes (and buffers) aligned to the logical block size; 4 KiB covers all.
DIRECT_ALIGN = 4096
_DIRECT_MIN = 256 * 1024  # below this the page cache is as fast, and small blocks are common


_B32_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"]


def _b32(data: bytes) -> str:
    """Unpadded lower-case RFC 4648 base32 (as :func:`greenbench.store.multiformats.b32encode`), 10 bits
    per table lookup: a block file's name is computed for every leaf a write looks up."""
    padded = data + bytes(-len(data) % 5)
    out = []
    for i in range(0, len(padded), 5):
        c = int.from_bytes(padded[i : i + 5], "big")
        out.append(_B32_PAIRS[c >> 30] + _B32_PAIRS[(c >> 20) & 0x3FF] + _B32_PAIRS[(c >> 10) & 0x3FF] + _B32_PAIRS[c & 0x3FF])
    return "".join(out)[: (len(data) * 8 + 4) // 5]


_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def shard_of(mh: bytes) -> str:
    """The shard directory name of a block file: the two base32 characters before the key's last,
    computed without encoding the whole key."""
    t = int.from_bytes(mh, "big") << (-8 * len(mh) % 5)
    return _B32_ALPHABET[(t >> 10) & 31] + _B32_ALPHABET[(t >> 5) & 31]


class BlockNotFoundError(StoreError):
    """The store has no block for this CID (exit 2; the HTTP server maps it to 404)."""


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def os_error(exc: OSError, what: str, path: Path) -> StoreError:
    """A StoreError for an OS failure to ``what`` ``path`` (exit 2, with the usual fix)."""
    return StoreError(
        f"cannot {what} {path}: {exc.strerror or exc}",
        "pass --store DIR with a directory you can write to (or set GREENBENCH_STORE)",
    )


def entries(directory: Path) -> list[Path]:
    """A directory's entries, sorted; [] if it does not exist."""
    try:
        return sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise os_error(exc, "list", directory) from None


class BlockFiles:
    """The ``blocks/`` directory of a store (and the ``tmp/`` directory its writes go through).

    Args:
        root: the store directory.
    """

    def __init__(self, root: Path):
        self.dir = root / "blocks"
        self.tmp_dir = root / "tmp"
        self.direct_ok = bool(O_DIRECT) and os.environ.get("GREENBENCH_STORE_NO_DIRECT") != "1"
        self._local = threading.local()
        self._dir = str(self.dir)

    def _where(self, mh: bytes) -> str:
        # plain strings: this runs for every leaf of every stored file (tests/benchmarks/bench_store.py)
        key = _b32(mh)
        return self._dir + os.sep + key[-3:-1] + os.sep + key

    def path(self, mh: bytes) -> Path:
        """Where the block with multihash ``mh`` lives (whether or not it is there)."""
        return Path(self._where(mh))

    def size(self, mh: bytes) -> int | None:
        try:
            return os.stat(self._where(mh)).st_size
        except OSError:
            return None

    def read(self, mh: bytes) -> bytes | None:
        """The file's bytes, or None when there is no such file.

        Raises:
            StoreError: the file exists but cannot be read.
        """
        path = self._where(mh)
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(exc, "read", path) from None

    def write(self, mh: bytes, data: bytes | memoryview) -> None:
        """Atomically and durably write (or replace) the block file for ``mh``."""
        path = self.path(mh)
        tmp = self.write_temp(data)
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        fsync_path(path.parent)

    def shards(self) -> set[str]:
        """The shard directories that exist now (a block whose shard is not among them has no file)."""
        try:
            return set(os.listdir(self._dir))
        except OSError:
            return set()

    def remove(self, mh: bytes) -> bool:
        """Delete the block file for ``mh``; True if there was one."""
        try:
            os.unlink(self.path(mh))
            return True
        except FileNotFoundError:
            return False

    def iter_keys(self) -> Iterator[tuple[bytes, Path]]:
        """``(multihash, path)`` of every block file (stray files that are not base32 multihashes skipped)."""
        for shard in entries(self.dir):
            if not shard.is_dir():
                continue  # a stray file (.DS_Store, ...)
            for entry in entries(shard):
                try:
                    mh = mf.b32decode(entry.name)
                except StoreError:
                    continue
                yield mh, entry

    # --- temporary files ---------------------------------------------------------------------

    def write_temp(self, data: bytes | memoryview) -> str:
        """A durable (fsynced) temporary file in ``tmp/`` holding ``data``; returns its path."""
        if len(data) >= _DIRECT_MIN and len(data) % DIRECT_ALIGN == 0 and self.direct_ok:
            tmp = self._write_temp_direct(data)
            if tmp is not None:
                return tmp
        fd, tmp = tempfile.mkstemp(prefix="blk-", suffix=".tmp", dir=self.tmp_dir)
        try:
            write_all(fd, data)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def aligned_buffer(self, size: int) -> mmap.mmap:
        """This thread's page-aligned buffer (an anonymous mmap) of at least ``size`` bytes."""
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._local.buf = mmap.mmap(-1, max(size, 1 << 20))
        return buf

    def _write_temp_direct(self, data: bytes | memoryview) -> str | None:
        """Write a large, block-aligned block with O_DIRECT, past the page cache (module docstring).

        The copy into a page-aligned buffer (O_DIRECT needs one) is cheap beside the write. Returns None
        where the filesystem refuses O_DIRECT, and the store then stays on buffered writes. The file is
        fsynced before it is returned, as a buffered one is.
        """
        buf = self.aligned_buffer(len(data))
        buf[: len(data)] = data
        name = os.path.join(self.tmp_dir, f"blk-{os.urandom(8).hex()}.tmp")
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                self.direct_ok = False
                return None
            raise
        done = False
        try:
            with memoryview(buf)[: len(data)] as view:
                try:
                    write_all(fd, view)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct_ok = False  # alignment refused: buffered writes from now on
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
