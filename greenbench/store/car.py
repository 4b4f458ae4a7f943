"""CAR (Content Addressable aRchive) files: read CARv1 and CARv2, write CARv1.

Terms:
    CARv1: ``varint(len(header)) || header`` where the header is DAG-CBOR ``{"roots": [CID, ...],
        "version": 1}``, then sections ``varint(len(cid) + len(block)) || binary CID || block bytes``
        until the end of the file. Nothing in the format itself says whether a block matches its
        CID: readers must hash and compare (:meth:`CID.verify`).
    CARv2: an 11-byte pragma (a CARv1-style header saying ``{"version": 2}``), a 40-byte header
        (16 bytes of characteristics, then little-endian u64 data offset, data size, index offset),
        then an inner CARv1 at the data offset, then an optional index. greenbench reads the inner
        CARv1 and ignores the index.
    section offset: the byte offset in the file where a section's length varint starts; every
        error about a malformed CAR names one.

Malformed input (bad varint, bad header, bad section length, truncated file, bad CID) raises
:class:`greenbench.errors.StoreError` (exit 2) with the byte offset.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from greenbench.errors import StoreError
from greenbench.store import dagcbor
from greenbench.store import multiformats as mf
from greenbench.store.cid import CID

__all__ = ["CarReader", "read_car", "write_car", "inspect_car", "Section", "MAX_SECTION_BYTES", "MAX_HEADER_BYTES"]

#: Largest section accepted (go-car's default limit is the same).
MAX_SECTION_BYTES = 32 << 20
#: Largest CARv1 header accepted.
MAX_HEADER_BYTES = 1 << 20
CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")
_CARV2_HEADER_BYTES = 40


@dataclass(frozen=True)
class Section:
    """One CAR section: the block's CID, its bytes, and where the section starts in the file."""

    cid: CID
    data: bytes
    offset: int


class _Source:
    """A binary stream with a byte counter and an optional end (the inner CARv1 of a CARv2)."""

    def __init__(self, stream: BinaryIO, name: str):
        self.stream = stream
        self.name = name
        self.offset = 0
        self.limit: int | None = None

    def read(self, n: int) -> bytes:
        if self.limit is not None:
            n = max(0, min(n, self.limit - self.offset))
        chunks = []
        want = n
        while want:
            chunk = self.stream.read(want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.offset += len(data)
        return data

    def read_varint(self, what: str) -> int | None:
        """A varint, or None at a clean end of input (only before its first byte)."""
        start = self.offset
        buf = bytearray()
        while True:
            b = self.read(1)
            if not b:
                if not buf:
                    return None
                raise StoreError(f"{self.name}: truncated {what} at byte offset {start}")
            buf += b
            if not b[0] & 0x80:
                break
            if len(buf) >= mf.MAX_VARINT_BYTES:
                raise StoreError(f"{self.name}: bad varint ({what}) at byte offset {start}: longer than 9 bytes")
        try:
            value, _ = mf.decode_varint(buf, 0, what)
        except StoreError as exc:
            raise StoreError(f"{self.name}: bad varint ({what}) at byte offset {start}: {exc.message.split(': ', 1)[-1]}") from None
        return value


class CarReader:
    """Streaming CAR reader.

    Reading the header happens in the constructor; iterate to get :class:`Section` objects one at a
    time (memory stays at one block). Use as a context manager when you pass a path.

    Args:
        source: a path, bytes, or a binary stream positioned at the start of the CAR.
        name: how error messages name the input (defaults to the path, or "CAR").

    Attributes:
        version: 1, or 2 for a CARv2 (whose inner CARv1 is what gets read).
        roots: the root CIDs from the (inner) CARv1 header.
        data_offset: where the CARv1 payload starts in the file (0 for a CARv1).
    """

    def __init__(self, source: "str | os.PathLike | bytes | bytearray | memoryview | BinaryIO", name: str | None = None):
        self._owned: BinaryIO | None = None
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                self._owned = open(path, "rb")
            except OSError as exc:
                raise StoreError(f"cannot read CAR {path}: {exc.strerror or exc}", "check the file path") from None
            stream: BinaryIO = self._owned
            name = name or str(path)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            stream = io.BytesIO(bytes(source))
        else:
            stream = source
        if isinstance(stream, io.RawIOBase):
            stream = io.BufferedReader(stream)
        self._src = _Source(stream, name or "CAR")
        self.name = self._src.name
        self.version = 1
        self.data_offset = 0
        self.roots: list[CID] = []
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    # --- header ------------------------------------------------------------------------------

    def _read_header(self) -> None:
        src = self._src
        length = src.read_varint("header length")
        if length is None:
            raise StoreError(f"{self.name}: empty file, not a CAR", "pass a CARv1 or CARv2 file")
        if length == 0:
            raise StoreError(f"{self.name}: bad header at byte offset 0: header length is 0")
        if length > MAX_HEADER_BYTES:
            raise StoreError(f"{self.name}: bad header at byte offset 0: header length {length} exceeds {MAX_HEADER_BYTES} bytes")
        start = src.offset
        raw = src.read(length)
        if len(raw) < length:
            raise StoreError(f"{self.name}: truncated header at byte offset {start}: declares {length} bytes, {len(raw)} present")
        if bytes([length]) + raw == CARV2_PRAGMA:
            self._enter_v2()
            return
        self._parse_v1_header(raw, start)

    def _parse_v1_header(self, raw: bytes, start: int) -> None:
        try:
            header = dagcbor.decode(raw)
        except StoreError as exc:
            raise StoreError(f"{self.name}: bad header at byte offset {start}: {exc.message}") from None
        if not isinstance(header, dict):
            raise StoreError(f"{self.name}: bad header at byte offset {start}: not a map")
        version = header.get("version")
        if version != 1:
            raise StoreError(
                f"{self.name}: bad header at byte offset {start}: version {version!r} (expected 1, or a CARv2 pragma)",
                "greenbench reads CARv1 and CARv2 files",
            )
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise StoreError(f"{self.name}: bad header at byte offset {start}: 'roots' must be a list of CIDs")
        extra = sorted(set(header) - {"roots", "version"})
        if extra:
            raise StoreError(f"{self.name}: bad header at byte offset {start}: unknown field(s) {', '.join(extra)}")
        self.roots = roots

    def _enter_v2(self) -> None:
        src = self._src
        at = src.offset
        head = src.read(_CARV2_HEADER_BYTES)
        if len(head) < _CARV2_HEADER_BYTES:
            raise StoreError(f"{self.name}: truncated CARv2 header at byte offset {at}")
        data_offset = int.from_bytes(head[16:24], "little")
        data_size = int.from_bytes(head[24:32], "little")
        if data_offset < src.offset or data_size == 0:
            raise StoreError(
                f"{self.name}: bad CARv2 header at byte offset {at}: data offset {data_offset}, size {data_size}",
            )
        skip = data_offset - src.offset
        while skip:
            got = src.read(min(skip, 1 << 20))
            if not got:
                raise StoreError(f"{self.name}: truncated CARv2: data offset {data_offset} is past the end of the file")
            skip -= len(got)
        self.version = 2
        self.data_offset = data_offset
        src.limit = data_offset + data_size
        length = src.read_varint("inner CARv1 header length")
        if length is None:
            raise StoreError(f"{self.name}: truncated CARv2: no inner CARv1 at byte offset {data_offset}")
        if length == 0 or length > MAX_HEADER_BYTES:
            raise StoreError(f"{self.name}: bad inner CARv1 header at byte offset {data_offset}: length {length}")
        start = src.offset
        raw = src.read(length)
        if len(raw) < length:
            raise StoreError(f"{self.name}: truncated inner CARv1 header at byte offset {start}")
        self._parse_v1_header(raw, start)

    # --- sections ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Section]:
        src = self._src
        while True:
            offset = src.offset
            length = src.read_varint("section length")
            if length is None:
                if src.limit is not None and src.offset < src.limit:
                    raise StoreError(f"{self.name}: truncated CARv2: inner CARv1 ends at byte offset {src.offset}, header says {src.limit}")
                return
            if length == 0:
                raise StoreError(f"{self.name}: bad section length at byte offset {offset}: 0")
            if length > MAX_SECTION_BYTES:
                raise StoreError(
                    f"{self.name}: bad section length at byte offset {offset}: {length} bytes exceeds the {MAX_SECTION_BYTES >> 20} MiB limit"
                )
            body_at = src.offset
            body = src.read(length)
            if len(body) < length:
                raise StoreError(
                    f"{self.name}: truncated section at byte offset {offset}: declares {length} bytes, only {len(body)} remain"
                )
            try:
                cid, cid_end = CID.decode_prefix(body, 0)
            except StoreError as exc:
                raise StoreError(f"{self.name}: bad CID in section at byte offset {offset} (CID at {body_at}): {exc.message}") from None
            yield Section(cid, body[cid_end:], offset)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> "CarReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_car(source, name: str | None = None) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Open a CAR and return its roots and a lazy iterator of ``(cid, block bytes)``.

    The header is read (and checked) now; sections are read as you iterate. Blocks are NOT verified
    here: call ``cid.verify(data)`` (or use :func:`inspect_car`). A path is closed when the iterator
    is exhausted or garbage-collected.
    """
    reader = CarReader(source, name)

    def blocks() -> Iterator[tuple[CID, bytes]]:
        with reader:
            for section in reader:
                yield section.cid, section.data

    return reader.roots, blocks()


def car_parts(roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """A CARv1 as a stream of byte strings (header, then each section's prefix and data), so a CAR of any
    size can be written or served without holding it in memory.

    Blocks are emitted as given (the caller guarantees they match their CIDs).
    """
    header = dagcbor.encode({"roots": list(roots), "version": 1})
    yield mf.encode_varint(len(header)) + header
    for cid, data in blocks:
        cid_bytes = cid.to_bytes()
        yield mf.encode_varint(len(cid_bytes) + len(data)) + cid_bytes
        yield data


def write_car(fileobj: BinaryIO, roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Write a CARv1 to ``fileobj``. Returns the number of bytes written."""
    written = 0
    for part in car_parts(roots, blocks):
        fileobj.write(part)
        written += len(part)
    return written


@dataclass
class CarSummary:
    """What ``store car inspect`` reports."""

    version: int
    roots: list[CID]
    blocks: int = 0
    bytes: int = 0
    codecs: dict[str, int] = field(default_factory=dict)
    multihashes: dict[str, int] = field(default_factory=dict)
    failed: list[CID] = field(default_factory=list)
    unverifiable: list[CID] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """True only when every block was hashed and matched its CID."""
        return not self.failed and not self.unverifiable

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "roots": [str(r) for r in self.roots],
            "blocks": self.blocks,
            "block_bytes": self.bytes,
            "codecs": dict(sorted(self.codecs.items())),
            "multihashes": dict(sorted(self.multihashes.items())),
            "verified": self.verified,
            "failed": [str(c) for c in self.failed],
            "unverifiable": [str(c) for c in self.unverifiable],
        }


def inspect_car(source, name: str | None = None) -> CarSummary:
    """Read a whole CAR, count blocks by codec and multihash, and hash every block against its CID.

    Raises:
        StoreError: the CAR is malformed (a failed block hash is reported in the summary instead).
    """
    with CarReader(source, name) as reader:
        summary = CarSummary(reader.version, list(reader.roots))
        for section in reader:
            cid = section.cid
            summary.blocks += 1
            summary.bytes += len(section.data)
            summary.codecs[cid.codec_name] = summary.codecs.get(cid.codec_name, 0) + 1
            summary.multihashes[cid.hash_name] = summary.multihashes.get(cid.hash_name, 0) + 1
            if not cid.can_verify:
                summary.unverifiable.append(cid)
            elif not cid.verify(section.data):
                summary.failed.append(cid)
    return summary
