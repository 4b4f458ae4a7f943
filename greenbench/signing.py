"""Signed results: Ed25519 keys named by ``did:key``, DSSE envelopes over in-toto Statements.

Terms:
    signing key: an Ed25519 private key (RFC 8032) kept in ``config_dir()/keys/ed25519.pem``
        (PKCS#8 PEM, mode 0600). It never leaves that file and is never printed.
    did:key: the signer id, ``did:key:z`` + base58btc(varint(0xed) + the raw 32-byte public key);
        0xed is the multicodec code of ``ed25519-pub``, so every such id starts ``did:key:z6Mk``.
        The public key can be recovered from the id alone, so an envelope carries its own key.
    DSSE: Dead Simple Signing Envelope (secure-systems-lab/dsse, protocol v1):
        ``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``. The
        signature covers PAE(payloadType, payload) = ``"DSSEv1" SP LEN(type) SP type SP LEN(body)
        SP body`` (LEN: decimal byte length), so neither the type nor the body can be swapped.
    in-toto Statement v1: ``{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name",
        "digest": {"sha256": hex}}], "predicateType": URI, "predicate": {...}}``. For greenbench the
        predicate is the result document, the subject digest is sha256 of its canonical (JCS)
        bytes and the predicate type is :data:`PREDICATE_TYPE`.

A greenbench envelope verifies when: it is an object with the three DSSE fields; its payload type
is in-toto JSON; every signature's ``keyid`` is a did:key whose key verifies the signature over the
PAE; (with a trust list) at least one signer is trusted; and the payload is a Statement v1 whose
subject digest equals sha256 of the predicate's canonical bytes. Anything else raises
:class:`~greenbench.errors.VerificationError` (exit 1) with the reason; input that is not JSON or
not a DSSE envelope at all raises :class:`~greenbench.errors.GreenbenchError` (exit 2).
"""

from __future__ import annotations

import base64
import binascii
import errno
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from greenbench.canonical import canonical_bytes, canonical_bytes_of_json, json_string
from greenbench.errors import GreenbenchError, VerificationError
from greenbench.fsutil import fsync_dir

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "PREDICATE_TYPE",
    "KEY_FILE",
    "Verified",
    "key_dir",
    "init_key",
    "load_key",
    "load_or_create_key",
    "did_key",
    "public_key_from_did",
    "did_public_bytes",
    "strict_rejection",
    "public_key_problem",
    "verify_signature",
    "SMALL_ORDER_Y",
    "pae",
    "b64decode",
    "dsse_verify",
    "make_statement",
    "sign_result",
    "sign_result_verified",
    "envelope_bytes",
    "statement_bytes",
    "verify_envelope",
    "is_envelope",
    "load_json_file",
    "load_envelope",
    "read_trust_file",
    "envelope_path_for",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://greenbench.dev/result/v1"
KEY_FILE = "ed25519.pem"

_ED25519_PUB_PREFIX = b"\xed\x01"  # unsigned-varint of multicodec 0xed (ed25519-pub)
_DID_PREFIX = "did:key:"
#: base58btc of 0xed01 + 32 key bytes is at most 48 characters; anything longer is rejected undecoded.
_DID_BODY_MAX = 50
#: signatures verified per envelope at most (each is an Ed25519 verification).
MAX_SIGNATURES = 16
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


# --------------------------------------------------------------------------- keys


def key_dir(dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the signing key: ``dir`` or ``config_dir()/keys``."""
    if dir is not None:
        return Path(dir)
    from greenbench.fsutil import config_dir

    return config_dir() / "keys"


def _pem_of(key: "Ed25519PrivateKey") -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` with mode 0600, atomically, only if it does not exist.

    The bytes go to a temporary file opened with ``O_CREAT|O_EXCL`` and mode 0600 (never readable by
    others, not even briefly), are fsynced, and the file is hard-linked to ``path``: ``link`` fails if
    ``path`` exists, so two concurrent ``keys init`` never overwrite each other and a reader never
    sees a partial key. Returns False when ``path`` already existed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:  # filesystems without hard links: fall back to an exclusive rename
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if path.exists():
                return False
            os.replace(tmp, path)
        fsync_dir(path.parent)
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def load_key(dir: str | os.PathLike | None = None) -> "Ed25519PrivateKey":
    """Load the signing key from ``key_dir(dir)``.

    Raises:
        GreenbenchError: no key there (hint: ``greenbench keys init``), the file is readable by
            group/others, or it is not an Ed25519 PEM key.
    """
    path = key_dir(dir) / KEY_FILE
    try:
        st = os.stat(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise GreenbenchError(
            f"no signing key at {path}", "create one with `greenbench keys init`"
        ) from None
    except OSError as exc:
        raise GreenbenchError(f"cannot read signing key {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise GreenbenchError(
            f"signing key {path} is accessible by other users (mode {st.st_mode & 0o777:04o})",
            f"restrict it with `chmod 600 {path}` (and consider the key compromised if others could read it)",
        )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise GreenbenchError(
            f"{path} is not an unencrypted PEM private key",
            "move it away and run `greenbench keys init` to create a new key",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise GreenbenchError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key",
            "move it away and run `greenbench keys init` to create an Ed25519 key",
        )
    return key


def init_key(dir: str | os.PathLike | None = None) -> tuple["Ed25519PrivateKey", Path, bool]:
    """Create the signing key if absent; return ``(key, path, created)``. Idempotent and race-safe."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    kdir = key_dir(dir)
    path = kdir / KEY_FILE
    if path.exists():
        return load_key(kdir), path, False
    try:
        kdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = _create_exclusive(path, _pem_of(Ed25519PrivateKey.generate()))
    except OSError as exc:
        raise GreenbenchError(
            f"cannot create signing key in {kdir}: {exc.strerror or exc}",
            "set GREENBENCH_CONFIG_DIR to a directory you can write to, or fix its permissions",
        ) from None
    return load_key(kdir), path, created


def load_or_create_key(dir: str | os.PathLike | None = None) -> "Ed25519PrivateKey":
    """The signing key in ``key_dir(dir)``, created (0600) on first use."""
    return init_key(dir)[0]


# --------------------------------------------------------------------------- did:key


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"{ch!r} is not a base58btc character") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def _raw_public(public_key: "Ed25519PublicKey | Ed25519PrivateKey") -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(f"expected an Ed25519 key, got {type(public_key).__name__}")
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def did_key(public_key: "Ed25519PublicKey | Ed25519PrivateKey | bytes") -> str:
    """The ``did:key:z6Mk…`` id of an Ed25519 public key (a private key or raw 32 bytes also work)."""
    raw = bytes(public_key) if isinstance(public_key, (bytes, bytearray)) else _raw_public(public_key)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return _DID_PREFIX + "z" + _b58encode(_ED25519_PUB_PREFIX + raw)


def public_key_from_did(did: str) -> "Ed25519PublicKey":
    """The Ed25519 public key named by ``did`` (``did:key:z6Mk…``).

    Raises:
        GreenbenchError: not a did:key, not base58btc, not an ed25519-pub key, wrong length, or a key no
            signature can be trusted from (small order, non-canonical: see :func:`public_key_problem`).
    """
    return _public_object(did_public_bytes(did))


@functools.lru_cache(maxsize=4096)
def did_public_bytes(did: str) -> bytes:
    """The raw 32-byte Ed25519 public key named by ``did`` (checked as :func:`public_key_from_did` says)."""
    if not isinstance(did, str) or not did.startswith(_DID_PREFIX + "z"):
        raise GreenbenchError(
            f"{did!r} is not an Ed25519 did:key",
            "a signer id looks like did:key:z6Mk… (see `greenbench keys show`)",
        )
    body = did[len(_DID_PREFIX) + 1 :]
    if len(body) > _DID_BODY_MAX:  # checked before decoding: base58 decoding is quadratic in length
        raise GreenbenchError(f"{did[:40]!r}... is too long for an Ed25519 did:key")
    try:
        decoded = _b58decode(body)
    except ValueError as exc:
        raise GreenbenchError(f"{did!r} is not a valid did:key: {exc}") from None
    if not decoded.startswith(_ED25519_PUB_PREFIX) or len(decoded) != 34:
        raise GreenbenchError(
            f"{did!r} is not an Ed25519 did:key (multicodec ed25519-pub 0xed + 32 bytes expected)"
        )
    # Round-trip: reject non-canonical spellings (e.g. extra leading '1's) so one key has one id.
    if _b58encode(decoded) != did[len(_DID_PREFIX) + 1 :]:
        raise GreenbenchError(f"{did!r} is not a canonically encoded did:key")
    problem = public_key_problem(decoded[2:])
    if problem is not None:
        raise GreenbenchError(f"{did!r} is not a usable Ed25519 key: {problem}")
    return decoded[2:]


# --------------------------------------------------------------------------- DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``payload``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (DSSE verifiers accept either alphabet).

    Raises:
        ValueError: not base64 (stray characters, impossible length, mixed alphabets).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a base64 string, got {type(text).__name__}")
    if ("-" in text or "_" in text) and ("+" in text or "/" in text):
        raise ValueError("mixes the standard and URL-safe base64 alphabets")
    s = text.replace("-", "+").replace("_", "/")
    stripped = s.rstrip("=")
    if len(s) - len(stripped) > 2 or len(stripped) % 4 == 1:
        raise ValueError("has an impossible length or padding")
    try:
        data = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None
    # Reject non-canonical encodings (non-zero trailing bits) so one byte string has one spelling.
    if base64.b64encode(data).decode().rstrip("=") != stripped:
        raise ValueError("is not canonical base64 (non-zero trailing bits)")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dsse_verify(
    envelope: Mapping[str, Any],
    keys: Mapping[str, "Ed25519PublicKey"],
    threshold: int = 1,
    payload_types: Iterable[str] = (PAYLOAD_TYPE,),
) -> tuple[bytes, list[str]]:
    """Generic DSSE v1 verification against a set of trusted Ed25519 keys.

    A signature counts for the first trusted key that verifies it (only the key named by its
    ``keyid`` when one is given); each key counts once. This is the protocol the published DSSE
    test vectors exercise; greenbench's own envelopes go through :func:`verify_envelope`.

    Args:
        envelope: the parsed envelope.
        keys: trusted keys by key id.
        threshold: how many distinct trusted keys must have signed.
        payload_types: the payload types this verifier accepts.

    Returns:
        ``(payload bytes, ids of the keys that signed)``.

    Raises:
        VerificationError: unsupported payload type, bad base64, or fewer than ``threshold`` keys.
    """
    ptype = envelope.get("payloadType")
    if not isinstance(ptype, str) or ptype not in set(payload_types):
        raise VerificationError(f"unsupported DSSE payloadType {ptype!r}")
    try:
        payload = b64decode(envelope.get("payload"))
    except ValueError as exc:
        raise VerificationError(f"DSSE payload is not base64: {exc}") from None
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise VerificationError("the envelope has no signatures")
    message = pae(ptype, payload)
    signed: list[str] = []
    for entry in sigs:
        if not isinstance(entry, Mapping):
            continue
        try:
            sig = b64decode(entry.get("sig"))
        except ValueError:
            continue
        keyid = entry.get("keyid")
        candidates = [keyid] if isinstance(keyid, str) and keyid else list(keys)
        for kid in candidates:
            if kid in signed or kid not in keys:
                continue
            if _ed25519_ok(keys[kid], sig, message):
                signed.append(kid)
                break
    if len(signed) < threshold:
        raise VerificationError(
            f"DSSE envelope has {len(signed)} valid signature(s) from distinct trusted keys, "
            f"{threshold} required"
        )
    return payload, signed


# --------------------------------------------------------------------------- strict Ed25519

#: The field prime p = 2^255 - 19 and the prime order L of the base point (RFC 8032, section 5.1).
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_Y_MASK = (1 << 255) - 1
#: y-coordinates of the eight points of small order (dividing 8) on edwards25519, plus the two
#: non-canonical spellings p and p + 1 of y = 0 and y = 1: the identity (y = 1), the point of order 2
#: (y = p - 1), the two of order 4 (y = 0) and the four of order 8 (the two y below, each with either
#: sign of x). An encoding whose y is one of these (whatever its sign bit) is rejected, as libsodium's
#: ``ge25519_has_small_order`` does; tests/test_signing.py derives them from the curve equation.
SMALL_ORDER_Y = frozenset({
    0,
    1,
    0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826,
    0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7,
    _P - 1,
    _P,
    _P + 1,
})


def strict_rejection(public: bytes, sig: bytes) -> str | None:
    """Why libsodium's ``crypto_sign_verify_detached`` would refuse ``sig`` by ``public`` before any
    curve arithmetic, or None.

    The rules (libsodium's ``_crypto_sign_ed25519_verify_detached``): S is canonical (S < L, RFC 8032
    section 5.1.7 step 1); R is not of small order; A is canonically encoded (y < p) and not of small
    order. A small-order A signs anything: the did:key of the identity point with the signature
    "identity || zeros" satisfies the verification equation for every message. The equation itself is
    then checked without the cofactor by comparing encodings, so a non-canonical R never matches.
    """
    if len(public) != 32:
        return f"a public key has 32 bytes, got {len(public)}"
    if len(sig) != 64:
        return f"a signature has 64 bytes, got {len(sig)}"
    if int.from_bytes(sig[32:], "little") >= _L:
        return "its S is not reduced modulo L (non-canonical signature)"
    if int.from_bytes(sig[:32], "little") & _Y_MASK in SMALL_ORDER_Y:
        return "its R is a point of small order"
    y = int.from_bytes(public, "little") & _Y_MASK
    if y >= _P:
        return "the public key is not canonically encoded"
    if y in SMALL_ORDER_Y:
        return "the public key is a point of small order"
    return None


def public_key_problem(public: bytes) -> str | None:
    """Why ``public`` can never be a trustworthy Ed25519 key (non-canonical or small order), or None."""
    if len(public) != 32:
        return f"a public key has 32 bytes, got {len(public)}"
    y = int.from_bytes(public, "little") & _Y_MASK
    if y >= _P:
        return "it is not a canonically encoded point"
    if y in SMALL_ORDER_Y:
        return "it is a point of small order, which verifies signatures it never made"
    return None


def verify_signature(public: bytes, sig: bytes, message: bytes) -> bool:
    """Strict Ed25519 verification, accepting exactly what libsodium's ``crypto_sign_verify_detached``
    accepts: :func:`strict_rejection`'s checks, then OpenSSL's cofactorless check (through
    ``cryptography``), which compares the encoding of [S]B - [k]A with R byte for byte."""
    if strict_rejection(public, sig) is not None:
        return False
    from cryptography.exceptions import InvalidSignature

    try:
        _public_object(public).verify(sig, message)
        return True
    except (InvalidSignature, ValueError):
        return False


_KEY_OBJECTS: dict[bytes, Any] = {}


def _public_object(public: bytes) -> "Ed25519PublicKey":
    """The ``cryptography`` key object of raw ``public`` bytes (kept: a store holds few signers)."""
    key = _KEY_OBJECTS.get(public)
    if key is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(public)
        if len(_KEY_OBJECTS) < 4096:
            _KEY_OBJECTS[public] = key
    return key


def _ed25519_ok(key: "Ed25519PublicKey | bytes", sig: bytes, message: bytes) -> bool:
    """:func:`verify_signature` for a key object or raw bytes."""
    raw = bytes(key) if isinstance(key, (bytes, bytearray)) else _raw_public(key)
    return verify_signature(raw, sig, message)


# --------------------------------------------------------------------------- greenbench envelopes


@dataclass(frozen=True)
class Verified:
    """A verified greenbench envelope.

    Attributes:
        signer: the did:key of the (first trusted) signer.
        statement: the in-toto Statement (the decoded payload).
        result: the result document (the statement's predicate).
        signers: every did:key that signed, in envelope order.
        subject_name: the subject's name (the result file name at signing time).
        sha256: hex sha256 of the result's canonical bytes (the subject digest).
    """

    signer: str
    statement: dict
    result: dict
    signers: tuple[str, ...] = ()
    subject_name: str = ""
    sha256: str = ""
    payload: bytes = field(default=b"", repr=False)


def make_statement(doc: Mapping[str, Any], name: str) -> dict:
    """The in-toto Statement v1 whose predicate is ``doc`` and whose subject is its sha256."""
    digest = hashlib.sha256(canonical_bytes(doc)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(doc),
    }


def statement_bytes(doc: Mapping[str, Any], name: str, body: bytes | None = None) -> tuple[bytes, str]:
    """The canonical (JCS) bytes of :func:`make_statement` ``(doc, name)`` and the subject's sha256 (hex),
    with ``doc`` encoded once: its bytes are both what the digest covers and the predicate's spelling.

    Args:
        body: ``canonical_bytes(doc)`` when the caller has them already.

    Raises:
        ValueError: ``doc`` holds values JSON cannot represent.
    """
    if body is None:
        body = canonical_bytes(doc)
    digest = hashlib.sha256(body).hexdigest()
    # JCS member order: "_type" < "predicate" < "predicateType" < "subject"; "digest" < "name".
    payload = b"".join((
        b'{"_type":', json_string(STATEMENT_TYPE).encode(), b',"predicate":', body,
        b',"predicateType":', json_string(PREDICATE_TYPE).encode(),
        b',"subject":[{"digest":{"sha256":"', digest.encode(), b'"},"name":', json_string(name).encode("utf-8"), b"}]}",
    ))
    return payload, digest


def sign_result(doc: Mapping[str, Any], key: "Ed25519PrivateKey", name: str) -> dict:
    """Sign the result document ``doc`` (subject name ``name``) and return the DSSE envelope.

    The payload is the canonical (JCS) bytes of :func:`make_statement`; the keyid is the signer's
    did:key, so any verifier can check the envelope without a key server.

    Raises:
        GreenbenchError: ``doc`` is not a JSON object or holds values JSON cannot represent.
    """
    return sign_result_verified(doc, key, name)[0]


def sign_result_verified(doc: Mapping[str, Any], key: "Ed25519PrivateKey", name: str,
                         did: str | None = None, body: bytes | None = None) -> tuple[dict, Verified]:
    """:func:`sign_result`, and the :class:`Verified` a verification of the new envelope would give
    (without decoding and re-encoding what was just encoded: ``publish`` signs thousands at a time).

    Args:
        did: the key's did:key, when the caller has it already.
        body: ``canonical_bytes(doc)``, when the caller has them (see :func:`statement_bytes`).
    """
    if not isinstance(doc, Mapping):
        raise GreenbenchError(f"a result document is a JSON object, got {type(doc).__name__}")
    try:
        payload, digest = statement_bytes(doc, name, body)
    except ValueError as exc:
        raise GreenbenchError(f"cannot sign {name}: {exc}") from None
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    did = did or did_key(key)
    env = {"payload": _b64(payload), "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": did, "sig": _b64(sig)}]}
    statement = {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": digest}}],
                 "predicateType": PREDICATE_TYPE, "predicate": doc}
    return env, Verified(did, statement, dict(doc), (did,), name, digest, payload)


def envelope_bytes(env: Mapping[str, Any]) -> bytes:
    """The canonical JSON of an envelope greenbench made (:func:`sign_result`: standard padded base64, did:key
    ids), written directly: the same bytes as ``canonical_bytes(env)`` and as the envelope's canonical
    DAG-JSON block (members in the same order, nothing to escape), without walking it.

    Raises:
        ValueError: ``env`` is not of that shape (encode it the general way).
    """
    sigs = env["signatures"]
    parts = []
    for s in sigs:
        if set(s) != {"keyid", "sig"}:
            raise ValueError("a signature with other fields than keyid and sig")
        parts.append(f'{{"keyid":"{s["keyid"]}","sig":"{s["sig"]}"}}')
    text = f'{{"payload":"{env["payload"]}","payloadType":"{env["payloadType"]}","signatures":[{",".join(parts)}]}}'
    if len(env) != 3 or not text.isascii() or '\\' in text or text.count('"') != 10 + 8 * len(sigs):
        raise ValueError("not an envelope greenbench made")
    return text.encode("ascii")


def is_envelope(doc: Any) -> bool:
    """Whether ``doc`` has the shape of a DSSE envelope (the three fields, whatever their values)."""
    return isinstance(doc, dict) and {"payload", "payloadType", "signatures"} <= doc.keys()


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key given twice: name the first
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {key!r}")
    return out


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_strict(data: bytes | str) -> Any:
    try:
        return json.loads(data, object_pairs_hook=_strict_pairs, parse_constant=_bad_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def verify_envelope(env: Any, trust: set[str] | frozenset[str] | None = None) -> Verified:
    """Verify a greenbench DSSE envelope; see the module docstring for what is checked.

    Args:
        env: the parsed envelope.
        trust: if given, the did:keys allowed to sign; a valid signature by anyone else fails.

    Raises:
        GreenbenchError: ``env`` is not a DSSE envelope at all (exit 2).
        VerificationError: anything about it does not verify (exit 1); the message says what.
    """
    if not is_envelope(env):
        raise GreenbenchError(
            "not a DSSE envelope (a JSON object with payload, payloadType and signatures expected)",
            "sign a result first with `greenbench sign RESULT`",
        )
    ptype = env["payloadType"]
    if ptype != PAYLOAD_TYPE:
        raise VerificationError(f"payloadType is {ptype!r}, expected {PAYLOAD_TYPE!r}")
    try:
        payload = b64decode(env["payload"])
    except ValueError as exc:
        raise VerificationError(f"payload is not base64: {exc}") from None
    sigs = env["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise VerificationError("the envelope has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise VerificationError(f"the envelope has {len(sigs)} signatures; at most {MAX_SIGNATURES} are checked")
    message = pae(ptype, payload)
    signers: list[str] = []
    for i, entry in enumerate(sigs):
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str):
            raise VerificationError(f"signature {i} has no keyid (a did:key is required)")
        keyid = entry["keyid"]
        try:
            public = did_public_bytes(keyid)
        except GreenbenchError as exc:
            raise VerificationError(f"signature {i}: {exc.message}") from None
        try:
            sig = b64decode(entry.get("sig"))
        except ValueError as exc:
            raise VerificationError(f"signature {i} by {keyid} is not base64: {exc}") from None
        why = strict_rejection(public, sig)
        if why is not None:
            raise VerificationError(f"signature {i} by {keyid} is refused: {why}")
        if not verify_signature(public, sig, message):
            raise VerificationError(f"signature {i} by {keyid} does not verify")
        signers.append(keyid)
    if trust is not None:
        trusted = [s for s in signers if s in trust]
        if not trusted:
            raise VerificationError(f"signed by {', '.join(signers)}, which is not in the trust list")
        signer = trusted[0]
    else:
        signer = signers[0]
    statement, result, name, digest = _check_statement(payload)
    return Verified(signer, statement, result, tuple(signers), name, digest, payload)


def _check_statement(payload: bytes) -> tuple[dict, dict, str, str]:
    try:
        statement = _loads_strict(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"payload is not JSON: {exc}") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"payload is not an in-toto Statement ({STATEMENT_TYPE})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(
            f"predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE!r}"
        )
    result = statement.get("predicate")
    if not isinstance(result, dict):
        raise VerificationError("the statement's predicate is not a result document (JSON object)")
    subject = statement.get("subject")
    if (
        not isinstance(subject, list)
        or len(subject) != 1
        or not isinstance(subject[0], dict)
        or not isinstance(subject[0].get("digest"), dict)
        or not isinstance(subject[0]["digest"].get("sha256"), str)
    ):
        raise VerificationError("the statement needs exactly one subject with a sha256 digest")
    want = subject[0]["digest"]["sha256"]
    try:
        got = hashlib.sha256(canonical_bytes_of_json(result)).hexdigest()  # decoded from the payload
    except ValueError as exc:
        raise VerificationError(f"the predicate cannot be canonicalized: {exc}") from None
    if got != want.lower():
        raise VerificationError(f"subject sha256 {want} does not match the result's sha256 {got}")
    name = subject[0].get("name")
    return statement, result, name if isinstance(name, str) else "", got


# --------------------------------------------------------------------------- files


def load_json_file(path: str | os.PathLike) -> Any:
    """Parse a JSON file strictly (no duplicate keys, no NaN).

    Raises:
        GreenbenchError: unreadable or not JSON, with the file, line and column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GreenbenchError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from None
    try:
        return _loads_strict(data)
    except json.JSONDecodeError as exc:
        raise GreenbenchError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}",
            "pass a result document or a DSSE envelope written by greenbench",
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise GreenbenchError(f"{path}: not valid JSON: {exc}") from None


def load_envelope(path: str | os.PathLike) -> dict:
    """Read a DSSE envelope file (shape only; verify it with :func:`verify_envelope`).

    Raises:
        GreenbenchError: not JSON, or not an envelope (exit 2).
    """
    doc = load_json_file(path)
    if not is_envelope(doc):
        raise GreenbenchError(
            f"{path} is not a DSSE envelope (payload, payloadType and signatures expected)",
            "sign the result first with `greenbench sign RESULT` and verify the .dsse.json it writes",
        )
    return doc


def read_trust_file(path: str | os.PathLike, allow_empty: bool = False, ordered: bool = False):
    """The did:keys listed in a trust file: one per line; blank lines and ``#`` comments ignored.

    Args:
        allow_empty: a file listing no key means "trust nobody" (the trust file ``greenbench keys trust``
            manages); else it is an error (a ``--trust`` file that lists nobody is a mistake).
        ordered: return a list in file order (duplicates dropped) instead of a set.

    Raises:
        GreenbenchError: unreadable, an invalid did:key (with file:line), or no keys at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GreenbenchError(f"cannot read trust file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    keys: dict[str, None] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            public_key_from_did(entry)
        except GreenbenchError as exc:
            raise GreenbenchError(
                f"{path}:{lineno}: {exc.message}",
                "list one signer per line as did:key:z6Mk… (from `greenbench keys show`); # starts a comment",
            ) from None
        keys[entry] = None
    if not keys and not allow_empty:
        raise GreenbenchError(
            f"trust file {path} lists no did:key", "add the did:key of each signer you trust, one per line"
        )
    return list(keys) if ordered else set(keys)


def envelope_path_for(result_path: str | os.PathLike) -> Path:
    """Where ``greenbench sign`` writes the envelope of ``result_path``: ``<stem>.dsse.json`` beside it."""
    p = Path(result_path)
    stem = p.name[: -len(".json")] if p.name.endswith(".json") else p.name
    return p.with_name(f"{stem}.dsse.json")
