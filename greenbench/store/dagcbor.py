"""DAG-CBOR: the IPLD codec (0x71) of CAR headers and much of IPFS; greenbench reads it, and writes CAR headers.

Terms:
    CBOR: RFC 8949 binary encoding; a data item is a major type (3 bits) plus an argument.
    DAG-CBOR: the CBOR subset for the IPLD data model: links are tag 42 around a byte string holding
        ``0x00 || binary CID``; no other tags; map keys are strings; no indefinite lengths; in the
        canonical form ints use their shortest encoding, floats are always 64-bit, and map keys are
        sorted by length first, then bytewise.

The decoder is strict where it matters for safety and identity (repeated map keys, non-string keys,
unknown tags, indefinite lengths, lengths beyond the input, trailing bytes) and tolerant of
non-shortest integer or float encodings found in the wild (the CID still pins the exact bytes).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from greenbench.errors import StoreError
from greenbench.store.cid import CID

__all__ = ["encode", "decode", "links"]

MAX_DEPTH = 512


# --- encoding --------------------------------------------------------------------------------


def _head(major: int, arg: int, out: bytearray) -> None:
    if arg < 24:
        out.append(major << 5 | arg)
    elif arg < 0x100:
        out += bytes((major << 5 | 24, arg))
    elif arg < 0x10000:
        out.append(major << 5 | 25)
        out += arg.to_bytes(2, "big")
    elif arg < 0x100000000:
        out.append(major << 5 | 26)
        out += arg.to_bytes(4, "big")
    elif arg < 1 << 64:
        out.append(major << 5 | 27)
        out += arg.to_bytes(8, "big")
    else:
        raise StoreError(f"cannot encode as DAG-CBOR: {arg} does not fit 64 bits")


def encode(obj: Any) -> bytes:
    """Canonical DAG-CBOR bytes of ``obj`` (same Python mapping as :mod:`greenbench.store.dagjson`)."""
    out = bytearray()
    _encode(obj, out, 0)
    return bytes(out)


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise StoreError(f"cannot encode as DAG-CBOR: nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise StoreError(f"cannot encode as DAG-CBOR: {value} is not allowed")
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise StoreError("cannot encode as DAG-CBOR: string with a lone surrogate") from None
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, CID):
        raw = b"\x00" + value.to_bytes()
        out += b"\xd8\x2a"
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        encoded_keys = []
        for key in value:
            if not isinstance(key, str):
                raise StoreError(f"cannot encode as DAG-CBOR: map key {key!r} is not a string")
            encoded_keys.append((key.encode("utf-8"), key))
        encoded_keys.sort(key=lambda kk: (len(kk[0]), kk[0]))
        _head(5, len(value), out)
        for raw, key in encoded_keys:
            _head(3, len(raw), out)
            out += raw
            _encode(value[key], out, depth + 1)
    else:
        raise StoreError(f"cannot encode a {type(value).__name__} as DAG-CBOR: {value!r:.80}")


# --- decoding --------------------------------------------------------------------------------


class _Decoder:
    def __init__(self, data: bytes | memoryview):
        self.data = data
        self.pos = 0

    def fail(self, what: str, at: int | None = None) -> StoreError:
        return StoreError(f"bad DAG-CBOR at byte offset {self.pos if at is None else at}: {what}")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.fail(f"truncated: needs {n} bytes, {len(self.data) - self.pos} left")
        chunk = bytes(self.data[self.pos : end])
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int]:
        start = self.pos
        (initial,) = self.take(1)
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, start
        if info == 24:
            return major, self.take(1)[0], start
        if info == 25:
            return major, int.from_bytes(self.take(2), "big"), start
        if info == 26:
            return major, int.from_bytes(self.take(4), "big"), start
        if info == 27:
            return major, int.from_bytes(self.take(8), "big"), start
        if info == 31:
            raise self.fail("indefinite-length items are not allowed in DAG-CBOR", start)
        raise self.fail(f"reserved additional information {info}", start)

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        start = self.pos
        (initial,) = self.take(1)
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            if info == 20:
                return False
            if info == 21:
                return True
            if info == 22:
                return None
            if info == 25:
                return _half(self.take(2))
            if info == 26:
                return _finite(struct.unpack(">f", self.take(4))[0], self, start)
            if info == 27:
                return _finite(struct.unpack(">d", self.take(8))[0], self, start)
            raise self.fail(f"simple value {info} is not in the IPLD data model", start)
        self.pos = start
        major, arg, start = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            raw = self.take(arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("string is not valid UTF-8", start) from None
        if major == 4:
            if arg > len(self.data) - self.pos:
                raise self.fail(f"list of {arg} items is longer than the remaining input", start)
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > len(self.data) - self.pos:
                raise self.fail(f"map of {arg} entries is longer than the remaining input", start)
            result: dict[str, Any] = {}
            for _ in range(arg):
                key_at = self.pos
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise self.fail("map key is not a string", key_at)
                if key in result:
                    raise self.fail(f"repeat map key {key!r}", key_at)
                result[key] = self.item(depth + 1)
            return result
        if major == 6:
            if arg != 42:
                raise self.fail(f"tag {arg} is not allowed (DAG-CBOR only has tag 42, links)", start)
            inner_at = self.pos
            raw = self.item(depth + 1)
            if not isinstance(raw, bytes) or not raw or raw[0] != 0:
                raise self.fail("tag 42 must wrap a byte string starting with 0x00", inner_at)
            try:
                return CID.decode(raw[1:])
            except StoreError as exc:
                raise self.fail(f"bad link: {exc.message}", inner_at) from None
        raise self.fail(f"major type {major}", start)  # pragma: no cover - all 8 handled above


def _half(raw: bytes) -> float:
    value = struct.unpack(">e", raw)[0]
    if math.isnan(value) or math.isinf(value):
        raise StoreError("bad DAG-CBOR: NaN and infinities are not in the IPLD data model")
    return value


def _finite(value: float, dec: _Decoder, at: int) -> float:
    if math.isnan(value) or math.isinf(value):
        raise dec.fail("NaN and infinities are not in the IPLD data model", at)
    return value


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Parse one DAG-CBOR data item that spans all of ``data``.

    Raises:
        StoreError: malformed or outside DAG-CBOR (message has the byte offset).
    """
    dec = _Decoder(bytes(data))
    try:
        value = dec.item(0)
    except RecursionError:
        raise StoreError("bad DAG-CBOR: nested too deeply") from None
    if dec.pos != len(dec.data):
        raise dec.fail(f"{len(dec.data) - dec.pos} trailing bytes after the data item")
    return value


def links(value: Any) -> list[CID]:
    """Every CID inside a decoded value, depth first."""
    from greenbench.store.dagjson import links as _links

    return _links(value)
