"""Multiformats primitives: unsigned varints, multibase alphabets, multicodec and multihash tables.

Terms:
    varint: the unsigned LEB128 integer used throughout multiformats (7 bits per byte, low group
        first, high bit set on every byte but the last). Multiformats caps it at 9 bytes (63 bits)
        and requires the minimal encoding, so a value has exactly one byte form.
    multibase: a one-character prefix naming the text encoding of the bytes that follow
        (``b`` = RFC 4648 base32, lower case, no padding; ``z`` = base58btc; ``f`` = base16).
    multicodec: a varint code naming the format of some bytes (``raw`` 0x55, ``dag-json`` 0x0129, ...).
    multihash: ``varint(hash function code) || varint(digest length) || digest``.

Everything here is pure and raises :class:`greenbench.errors.StoreError` on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from greenbench.errors import StoreError

__all__ = [
    "CODECS",
    "CODEC_NAMES",
    "HASHES",
    "HASH_NAMES",
    "decode_varint",
    "encode_varint",
    "b32encode",
    "b32decode",
    "b58encode",
    "b58decode",
    "b64encode_unpadded",
    "b64decode_unpadded",
    "multihash_digest",
    "codec_code",
    "hash_code",
]

#: multicodec name -> code for the content codecs greenbench knows.
CODECS: dict[str, int] = {
    "raw": 0x55,
    "dag-pb": 0x70,  # read only: CARs from IPFS carry it
    "dag-cbor": 0x71,
    "libp2p-key": 0x72,
    "git-raw": 0x78,
    "dag-jose": 0x85,
    "dag-json": 0x0129,
    "json": 0x0200,
    "fil-commitment-unsealed": 0xF101,
    "fil-commitment-sealed": 0xF102,
}
CODEC_NAMES: dict[int, str] = {v: k for k, v in CODECS.items()}

#: multihash function name -> code.
HASHES: dict[str, int] = {
    "identity": 0x00,
    "sha1": 0x11,
    "sha2-256": 0x12,
    "sha2-512": 0x13,
    "sha3-512": 0x14,
    "sha3-384": 0x15,
    "sha3-256": 0x16,
    "sha3-224": 0x17,
    "keccak-256": 0x1B,
    "murmur3-x64-64": 0x22,
    "blake2b-256": 0xB220,
    "blake2b-512": 0xB240,
    "blake2s-256": 0xB260,
    "blake3": 0x1E,
    "sha2-256-trunc254-padded": 0x1012,
    "poseidon-bls12_381-a2-fc1": 0xB401,
}
HASH_NAMES: dict[int, str] = {v: k for k, v in HASHES.items()}

#: Hash functions greenbench can compute (and so verify): code -> digest length in bytes.
VERIFIABLE_HASHES = {0x12: 32, 0x13: 64, 0x16: 32, 0x14: 64, 0xB220: 32, 0xB240: 64, 0xB260: 32, 0x1012: 32}

MAX_VARINT_BYTES = 9


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def encode_varint(value: int) -> bytes:
    """Unsigned varint bytes of ``value`` (0 <= value < 2**63)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]  # most varints (field keys, codes, lengths of CIDs): no loop
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0, what: str = "varint") -> tuple[int, int]:
    """Decode a minimal unsigned varint at ``offset``.

    Returns:
        ``(value, offset_after)``.

    Raises:
        StoreError: truncated, longer than 9 bytes, or not minimally encoded (names ``what`` and the offset).
    """
    value = 0
    shift = 0
    pos = offset
    n = len(data)
    while True:
        if pos >= n:
            raise StoreError(f"truncated {what} at byte offset {offset}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - offset > 1:
                raise StoreError(f"bad {what} at byte offset {offset}: not minimally encoded")
            return value, pos
        shift += 7
        if pos - offset >= MAX_VARINT_BYTES:
            raise StoreError(f"bad {what} at byte offset {offset}: longer than {MAX_VARINT_BYTES} bytes")


# --- base32 (RFC 4648, lower case, no padding) -------------------------------------------------


def b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Decode unpadded RFC 4648 base32 (either case, not mixed)."""
    if text != text.lower() and text != text.upper():
        raise StoreError(f"bad base32 text {text[:60]!r}: mixed case")
    pad = (-len(text)) % 8
    if pad in (2, 5, 7):  # impossible base32 lengths (1, 3 or 6 trailing characters)
        raise StoreError(f"bad base32 text {text[:60]!r}: impossible length {len(text)}")
    try:
        return base64.b32decode(text.upper() + "=" * pad)
    except (binascii.Error, ValueError):
        raise StoreError(f"bad base32 text {text[:60]!r}: characters outside a-z2-7") from None


# --- base58btc ------------------------------------------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    out = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        idx = _B58_INDEX.get(ch)
        if idx is None:
            raise StoreError(f"bad base58btc text {text[:60]!r}: {ch!r} is not a base58btc character")
        num = num * 58 + idx
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


# --- base64 (standard alphabet, no padding: DAG-JSON bytes) ------------------------------------


def b64encode_unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode_unpadded(text: str) -> bytes:
    """Decode standard-alphabet base64 without padding (padding is tolerated)."""
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise StoreError(f"bad base64 text {text[:60]!r}: impossible length")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise StoreError(f"bad base64 text {text[:60]!r}: characters outside the standard alphabet") from None


# --- multicodec / multihash --------------------------------------------------------------------


def codec_code(codec: str | int) -> int:
    """Multicodec code for a name or code."""
    if isinstance(codec, int):
        return codec
    try:
        return CODECS[codec]
    except KeyError:
        raise StoreError(
            f"unknown codec {codec!r}", f"use one of: {', '.join(sorted(CODECS))}"
        ) from None


def hash_code(name: str | int) -> int:
    """Multihash function code for a name or code."""
    if isinstance(name, int):
        return name
    try:
        return HASHES[name]
    except KeyError:
        raise StoreError(
            f"unknown hash function {name!r}", "use sha2-256, blake2b-256 or identity"
        ) from None


def multihash_digest(code: int, data: bytes | memoryview) -> bytes:
    """The digest of ``data`` under multihash function ``code``.

    Raises:
        StoreError: a hash function greenbench cannot compute.
    """
    if code == 0x12:
        return hashlib.sha256(data).digest()
    if code == 0x00:
        return bytes(data)
    if code == 0xB220:
        return hashlib.blake2b(data, digest_size=32).digest()
    if code == 0x1012:
        digest = bytearray(hashlib.sha256(data).digest())
        digest[31] &= 0x3F
        return bytes(digest)
    if code == 0x13:
        return hashlib.sha512(data).digest()
    if code == 0x16:
        return hashlib.sha3_256(data).digest()
    if code == 0x14:
        return hashlib.sha3_512(data).digest()
    if code == 0xB240:
        return hashlib.blake2b(data, digest_size=64).digest()
    if code == 0xB260:
        return hashlib.blake2s(data, digest_size=32).digest()
    name = HASH_NAMES.get(code, hex(code))
    raise StoreError(
        f"cannot compute multihash function {name} (0x{code:x})",
        "greenbench verifies sha2-256, sha2-512, sha3-256/512, blake2b-256/512, blake2s-256 and identity",
    )
