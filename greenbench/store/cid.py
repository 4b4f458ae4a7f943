"""Content identifiers (CIDs).

Terms:
    CID: a self-describing content address, ``<version><codec><multihash>``. Whoever holds the bytes
        can recompute the multihash and so check that the bytes are the ones addressed.
    CIDv0: the legacy form, a bare sha2-256 multihash of a dag-pb block, written in base58btc
        (``Qm...``). greenbench reads it (CARs from IPFS) but never makes one.
    CIDv1: ``varint(1) || varint(codec) || multihash``, written in multibase; greenbench writes the
        canonical base32 form (``b...``) and reads base32, base58btc (``z...``) and base16 (``f...``).
    codec: the multicodec of the addressed bytes (raw 0x55, dag-json 0x0129, dag-cbor 0x71, dag-pb 0x70,
        fil-commitment-unsealed 0xf101 for Filecoin piece CIDs).

Malformed CID text or bytes raise :class:`greenbench.errors.StoreError` (exit 2) saying what is wrong.
A CID's string form only ever contains ``[a-z2-7]`` (v1) or base58 characters (v0), so a parsed CID
is safe to use as a file name.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from greenbench.errors import StoreError
from greenbench.store import multiformats as mf

__all__ = ["CID", "cid_for", "RAW", "DAG_PB", "DAG_CBOR", "DAG_JSON", "FIL_COMMITMENT_UNSEALED", "SHA2_256", "IDENTITY"]

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
DAG_JSON = 0x0129
FIL_COMMITMENT_UNSEALED = 0xF101
SHA2_256 = 0x12
BLAKE2B_256 = 0xB220
IDENTITY = 0x00
SHA2_256_TRUNC254_PADDED = 0x1012

#: Longest CID text accepted (identity CIDs inline their data; this bounds them).
MAX_CID_TEXT = 4096


@dataclass(frozen=True)
class CID:
    """A parsed CID.

    Attributes:
        version: 0 or 1.
        codec: multicodec code of the content (0x70 for every v0 CID).
        hash_code: multihash function code.
        digest: the hash digest bytes (for identity, the data itself).
    """

    version: int
    codec: int
    hash_code: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise StoreError(f"unsupported CID version {self.version}")
        if self.version == 0 and (self.codec != DAG_PB or self.hash_code != SHA2_256 or len(self.digest) != 32):
            raise StoreError("a CIDv0 is always dag-pb with a 32-byte sha2-256 digest")

    # --- parsing ------------------------------------------------------------------------------

    @classmethod
    def decode(cls, value: "str | bytes | bytearray | memoryview | CID") -> "CID":
        """Parse a CID from its text (``b...``, ``B...``, ``z...``, ``f...``, ``Qm...``) or binary form.

        Raises:
            StoreError: anything malformed, including trailing bytes (message says what).
        """
        if isinstance(value, CID):
            return value
        if isinstance(value, str):
            return cls._decode_text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            cid, end = cls.decode_prefix(data, 0)
            if end != len(data):
                raise StoreError(f"bad CID bytes: {len(data) - end} trailing bytes after the CID")
            return cid
        raise StoreError(f"cannot read a CID from a {type(value).__name__}")

    @classmethod
    def _decode_text(cls, text: str) -> "CID":
        shown = text if len(text) <= 80 else text[:77] + "..."
        if not text:
            raise StoreError("bad CID '': empty string", "pass a CID such as bafkrei...")
        if len(text) > MAX_CID_TEXT:
            raise StoreError(f"bad CID {shown!r}: longer than {MAX_CID_TEXT} characters")
        if not text.isascii() or not text.isalnum():
            bad = next((c for c in text if not (c.isascii() and c.isalnum())), "?")
            raise StoreError(
                f"bad CID {shown!r}: character {bad!r} cannot occur in a CID",
                "a CID is one word of letters and digits, e.g. bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            )
        if len(text) == 46 and text.startswith("Qm"):
            mh = mf.b58decode(text)
            try:
                cid, end = cls.decode_prefix(mh, 0)
            except StoreError as exc:
                raise StoreError(f"bad CIDv0 {shown!r}: {exc.message}") from None
            if end != len(mh) or cid.version != 0:
                raise StoreError(f"bad CIDv0 {shown!r}: not a sha2-256 multihash")
            return cid
        prefix, body = text[0], text[1:]
        try:
            if prefix in "bB":
                raw = mf.b32decode(body)
                if mf.b32encode(raw) != body.lower():
                    raise StoreError("non-canonical base32 (unused trailing bits are set)")
            elif prefix == "z":
                raw = mf.b58decode(body)
            elif prefix in "fF":
                if len(body) % 2:
                    raise StoreError("odd number of base16 digits")
                raw = bytes.fromhex(body)
            else:
                raise StoreError(
                    f"unsupported multibase prefix {prefix!r}",
                    "use a base32 CIDv1 (b...), base58btc (z...) or a CIDv0 (Qm...)",
                )
        except (StoreError, ValueError) as exc:
            msg = exc.message if isinstance(exc, StoreError) else str(exc)
            raise StoreError(f"bad CID {shown!r}: {msg}", getattr(exc, "hint", None)) from None
        if raw[:1] != b"\x01":
            raise StoreError(f"bad CID {shown!r}: CIDv1 must start with version 1 after the multibase prefix")
        try:
            cid, end = cls.decode_prefix(raw, 0)
        except StoreError as exc:
            raise StoreError(f"bad CID {shown!r}: {exc.message}") from None
        if end != len(raw):
            raise StoreError(f"bad CID {shown!r}: {len(raw) - end} trailing bytes after the multihash")
        return cid

    @classmethod
    def decode_prefix(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple["CID", int]:
        """Parse a binary CID that starts at ``offset`` and may be followed by other bytes (CAR sections).

        Returns:
            ``(cid, offset_after_cid)``.
        """
        n = len(data)
        if offset + 2 <= n and data[offset] == 0x12 and data[offset + 1] == 0x20:
            end = offset + 34
            if end > n:
                raise StoreError(f"truncated CIDv0 at byte offset {offset}")
            return cls(0, DAG_PB, SHA2_256, bytes(data[offset + 2 : end])), end
        version, pos = mf.decode_varint(data, offset, "CID version")
        if version != 1:
            raise StoreError(f"bad CID at byte offset {offset}: version {version} (expected 1, or a CIDv0 multihash)")
        codec, pos = mf.decode_varint(data, pos, "CID codec")
        hcode, pos = mf.decode_varint(data, pos, "multihash code")
        length, pos = mf.decode_varint(data, pos, "multihash length")
        end = pos + length
        if end > n:
            raise StoreError(f"truncated multihash at byte offset {offset}: digest needs {length} bytes, {n - pos} left")
        expected = mf.VERIFIABLE_HASHES.get(hcode)
        if expected is not None and length != expected:
            raise StoreError(
                f"bad CID at byte offset {offset}: {mf.HASH_NAMES.get(hcode, hex(hcode))} digest is {length} bytes, expected {expected}"
            )
        return cls(1, codec, hcode, bytes(data[pos:end])), end

    # --- forms -------------------------------------------------------------------------------

    @property
    def multihash(self) -> bytes:
        """``varint(hash_code) || varint(len(digest)) || digest``."""
        return mf.encode_varint(self.hash_code) + mf.encode_varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        """Binary CID: the multihash for v0, ``0x01 || varint(codec) || multihash`` for v1."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + mf.encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return mf.b58encode(self.multihash)
        return "b" + mf.b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    def encode(self, base: str = "base32") -> str:
        """Text form in ``base32`` (default, ``b...``), ``base58btc`` (``z...``) or ``base16`` (``f...``)."""
        if self.version == 0 and base in ("base58btc", "base32"):
            return str(self)
        raw = self.to_bytes()
        if base == "base32":
            return "b" + mf.b32encode(raw)
        if base == "base58btc":
            return "z" + mf.b58encode(raw)
        if base == "base16":
            return "f" + raw.hex()
        raise StoreError(f"unknown multibase {base!r}", "use base32, base58btc or base16")

    def to_v1(self) -> "CID":
        return self if self.version == 1 else CID(1, self.codec, self.hash_code, self.digest)

    @property
    def codec_name(self) -> str:
        return mf.CODEC_NAMES.get(self.codec, f"0x{self.codec:x}")

    @property
    def hash_name(self) -> str:
        return mf.HASH_NAMES.get(self.hash_code, f"0x{self.hash_code:x}")

    @property
    def can_verify(self) -> bool:
        """True when greenbench can compute this CID's hash function."""
        return self.hash_code == IDENTITY or self.hash_code in mf.VERIFIABLE_HASHES

    def verify(self, data: bytes | bytearray | memoryview) -> bool:
        """True when ``data`` hashes to this CID's digest.

        Raises:
            StoreError: the hash function is one greenbench cannot compute.
        """
        if self.hash_code == IDENTITY:
            return bytes(data) == self.digest
        return hmac.compare_digest(mf.multihash_digest(self.hash_code, data), self.digest)

    def __lt__(self, other: "CID") -> bool:
        return self.to_bytes() < other.to_bytes()


def cid_for(data: bytes | bytearray | memoryview, codec: str | int = "raw", hash: str | int = "sha2-256") -> CID:
    """The CIDv1 of ``data`` under ``codec`` and hash function ``hash``.

    Raises:
        StoreError: unknown codec or hash function name.
    """
    hcode = mf.hash_code(hash)
    return CID(1, mf.codec_code(codec), hcode, mf.multihash_digest(hcode, data))
