"""DAG-JSON: the IPLD codec (0x0129) greenbench uses for its own documents.

Terms:
    IPLD data model: null, bool, int, float, string, bytes, list, map (string keys) and link (CID).
    DAG-JSON: JSON for that data model. A link is ``{"/": "<cid text>"}`` (base32 for v1, base58btc for
        v0), bytes are ``{"/": {"bytes": "<base64, standard alphabet, no padding>"}}``.
    canonical form: what :func:`encode` writes and what hashes consistently: map keys sorted by
        their UTF-8 bytes, no white space, minimal string escapes, integers in decimal, floats in
        their shortest round-trip form (ECMAScript ``Number#toString`` spelling, plus ``.0`` on a
        whole float so it stays a float), no NaN or infinities.

Python mapping: ``None``/``bool``/``int``/``float``/``str``/``bytes``/``list``/``dict``/:class:`CID`.
"""

from __future__ import annotations

import json
from typing import Any

from greenbench.canonical import format_number, json_string
from greenbench.errors import StoreError
from greenbench.store import multiformats as mf
from greenbench.store.cid import CID

__all__ = ["encode", "decode", "links"]

MIN_INT = -(2**64)
MAX_INT = 2**64 - 1
MAX_DEPTH = 512


def encode(obj: Any) -> bytes:
    """Canonical DAG-JSON bytes of ``obj``.

    Raises:
        StoreError: a value outside the IPLD data model (NaN, a non-string key, an int beyond 64 bits,
            a map whose only key is ``"/"``, which would read back as a link or bytes).
    """
    out: list[str] = []
    _encode(obj, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(f"cannot encode as DAG-JSON: string with a lone surrogate ({exc.reason})") from None


def _float(x: float) -> str:
    try:
        text = format_number(x)
    except ValueError as exc:
        raise StoreError(f"cannot encode as DAG-JSON: {exc}") from None
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise StoreError(f"cannot encode as DAG-JSON: nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json_string(value))
    elif isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise StoreError(f"cannot encode as DAG-JSON: integer {value} is outside the 64-bit range")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, CID):
        out.append('{"/":"' + str(value) + '"}')
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append('{"/":{"bytes":"' + mf.b64encode_unpadded(bytes(value)) + '"}}')
    elif isinstance(value, dict):
        keys = list(value)
        for key in keys:
            if not isinstance(key, str):
                raise StoreError(f"cannot encode as DAG-JSON: map key {key!r} is not a string")
        if keys == ["/"]:
            raise StoreError(
                'cannot encode as DAG-JSON: a map whose only key is "/" would read back as a link or bytes'
            )
        try:
            ordered = sorted(keys, key=lambda k: k.encode("utf-8"))
        except UnicodeEncodeError:
            raise StoreError("cannot encode as DAG-JSON: map key with a lone surrogate") from None
        out.append("{")
        for i, key in enumerate(ordered):
            if i:
                out.append(",")
            out.append(json_string(key))
            out.append(":")
            _encode(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise StoreError(f"cannot encode a {type(value).__name__} as DAG-JSON: {value!r:.80}")


# --- decoding --------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) == 1 and pairs[0][0] == "/":
        inner = pairs[0][1]
        if isinstance(inner, str):
            return CID.decode(inner)
        if isinstance(inner, dict) and list(inner) == ["bytes"] and isinstance(inner["bytes"], str):
            return mf.b64decode_unpadded(inner["bytes"])
        raise StoreError(
            'bad DAG-JSON: a map whose only key is "/" must be a link {"/": "<cid>"} or bytes {"/": {"bytes": "..."}}'
        )
    result: dict[str, Any] = {}
    for key, val in pairs:
        if key in result:
            raise StoreError(f"bad DAG-JSON: repeat map key {key!r}")
        result[key] = val
    return result


def _bad_constant(name: str) -> Any:
    raise StoreError(f"bad DAG-JSON: {name} is not a number in the IPLD data model")


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Parse DAG-JSON bytes: links become :class:`CID`, ``{"/": {"bytes": ...}}`` becomes bytes.

    Raises:
        StoreError: not UTF-8, not JSON, a repeated map key, a malformed link or bytes map, NaN/Infinity.
    """
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"bad DAG-JSON: not UTF-8 at byte offset {exc.start}") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_bad_constant)
    except json.JSONDecodeError as exc:
        raise StoreError(f"bad DAG-JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise StoreError("bad DAG-JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts (4300 digits)
        raise StoreError(f"bad DAG-JSON: {exc}") from None
    return value


def links(value: Any) -> list[CID]:
    """Every CID inside a decoded value, in document order (depth first)."""
    found: list[CID] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed([item[k] for k in sorted(item, key=lambda k: k.encode("utf-8"))]))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
