"""Canonical JSON bytes: the JSON Canonicalization Scheme (JCS, RFC 8785).

One encoder feeds result files, signatures and content addresses, so the same document always has
the same bytes. JCS: object members sorted by their UTF-16 code units, no insignificant white space,
strings with the minimal escapes, numbers in the ECMAScript ``Number.prototype.toString`` form.
NaN and infinities are not JSON and are rejected.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["canonical_bytes", "canonical_bytes_of_json", "format_number", "json_string"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` (dict/list/str/int/float/bool/None) as JCS UTF-8 bytes.

    Raises:
        ValueError: NaN/infinity, a non-string key, or an unsupported type.
    """
    parts: list[str] = []
    try:
        _encode(value, parts.append)
    except RecursionError:
        raise ValueError("document nested too deeply to encode") from None
    return "".join(parts).encode("utf-8")


#: The standard library's C encoder, sorted and compact: JCS bytes for ASCII documents, except numbers.
_C_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"),
                             check_circular=False).encode
#: ``bytes.translate`` table: digits to "0", the characters that can stand before a number to " ", "." kept,
#: the rest to "x"; an integer of 16 digits or more (beyond 2**53 perhaps) then reads " 0000000000000000".
_DIGITS = bytes((48 if 48 <= c <= 57 else 32 if c in b":,[-" else 46 if c == 46 else 120) for c in range(256))
_LONG_INTEGER = b" " + b"0" * 16


def canonical_bytes_of_json(doc: Any) -> bytes:
    """:func:`canonical_bytes` of a document decoded from JSON text (every object key a ``str``): the same
    bytes, about twice as fast (publishing signs and verifies thousands of results a second).

    The standard library's C encoder writes the document sorted and compact; for a document whose text is
    ASCII without a backslash that is JCS up to the spelling of numbers (code-point order is UTF-16 order
    for ASCII keys; no string needs an escape). The floats Python spells otherwise (an exponent, or a
    whole number's ".0") are found with ``str.find`` and rewritten when they stand outside the strings (an
    even number of quotes before them). Anything else (another alphabet, an escape, an integer of 16 digits
    or more, NaN) goes the general way. A key that is not a ``str`` (json would coerce it) must not reach
    this function.

    Raises:
        ValueError: as :func:`canonical_bytes`.
    """
    if type(doc) is not dict and type(doc) is not list:  # a number stands between delimiters in a container
        return canonical_bytes(doc)
    try:
        text = _C_ENCODE(doc)
    except (ValueError, TypeError, RecursionError):
        return canonical_bytes(doc)  # NaN, a key or value JSON cannot hold: the general way says what
    if not text.isascii() or "\\" in text or text.count("[") + text.count("{") > _FAST_CONTAINERS:
        return canonical_bytes(doc)
    raw = text.encode("ascii")
    spans: set[tuple[int, int]] = set()
    digits = raw.translate(_DIGITS)
    at = digits.find(_LONG_INTEGER)
    while at >= 0:  # integers of 16 digits or more (ECMAScript spells those beyond 2**53 as doubles)
        at = digits.find(_LONG_INTEGER, _number_at(text, at + 1, spans))
    for marker in ("e-", "e+", ".0,", ".0]", ".0}"):  # floats with an exponent or a ".0"
        at = text.find(marker)
        while at >= 0:
            at = text.find(marker, _number_at(text, at, spans))
    if not spans:
        return raw
    parts: list[str] = []
    at = counted = quotes = 0
    for start, end in sorted(spans):
        quotes += text.count('"', counted, start)
        counted = start
        if quotes % 2:  # inside a string
            continue
        token = text[start:end]
        parts.append(text[at:start])
        parts.append(format_number(int(token) if token.lstrip("-").isdigit() else float(token)))
        at = end
    parts.append(text[at:])
    return "".join(parts).encode("ascii")


#: Documents with more objects and arrays than this go the general way, which alone decides how deep is too
#: deep (the C encoder nests deeper than the general way's recursion): both then answer alike.
_FAST_CONTAINERS = 500
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?").match


def _number_at(text: str, at: int, spans: set[tuple[int, int]]) -> int:
    """Add the span of the number token around ``text[at]`` when one stands there as a value (right after
    ``:``, ``,`` or ``[``, right before ``,``, ``]`` or ``}``); returns where to look on from."""
    lo = max(0, at - 32)  # a double's repr is at most 24 characters; longer integers are found at their start
    start = max(text.rfind(":", lo, at + 1), text.rfind(",", lo, at + 1), text.rfind("[", lo, at + 1)) + 1
    if start == 0:
        return at + 1
    m = _NUMBER(text, start)
    if m is None or m.end() <= at or m.end() >= len(text) or text[m.end()] not in ",]}":
        return at + 1
    spans.add((start, m.end()))
    return m.end()


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


def _encode(value: Any, out) -> None:
    # Hot path of signing and publishing: the common types are tested by exact type first.
    kind = type(value)
    if kind is str:
        out(json_string(value))
    elif kind is float:
        out(format_number(value))
    elif kind is dict:
        try:
            joined = "".join(value)
        except TypeError:
            key = next(k for k in value if not isinstance(k, str))
            raise ValueError(f"JSON object keys must be strings, got {type(key).__name__}: {key!r}") from None
        # UTF-16 code-unit order is code-point order unless a key has a character above U+D7FF
        keys = sorted(value) if joined.isascii() else sorted(value, key=_utf16)
        out("{")
        first = True
        for key in keys:
            if first:
                first = False
            else:
                out(",")
            out(json_string(key))
            out(":")
            _encode(value[key], out)
        out("}")
    elif kind is list or kind is tuple:
        out("[")
        for i, item in enumerate(value):
            if i:
                out(",")
            _encode(item, out)
        out("]")
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif kind is int:
        out(format_number(value))
    elif isinstance(value, str):
        out(json_string(value))
    elif isinstance(value, (int, float)):
        out(format_number(value))
    elif isinstance(value, dict):
        _encode(dict(value), out)
    elif isinstance(value, (list, tuple)):
        _encode(list(value), out)
    else:
        raise ValueError(f"cannot encode {type(value).__name__} as JSON: {value!r}")


#: Characters a JSON string literal must escape.
_ESCAPE_SEARCH = re.compile(r'[\x00-\x1f"\\]').search


def json_string(s: str) -> str:
    """A JSON string literal with the minimal escapes (RFC 8785 section 3.2.2.2; DAG-JSON uses the same)."""
    if _ESCAPE_SEARCH(s) is None:
        return f'"{s}"'
    chars = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            chars.append(esc)
        elif ch < " ":
            chars.append(f"\\u{ord(ch):04x}")
        else:
            chars.append(ch)
    chars.append('"')
    return "".join(chars)


def format_number(x: int | float) -> str:
    """ECMAScript Number::toString of ``x`` as a double (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, bool):
        raise ValueError("booleans are not numbers")
    if isinstance(x, int):
        if abs(x) <= 2**53:
            return str(x)
        try:
            x = float(x)
        except OverflowError:
            raise ValueError(f"integer {str(x)[:20]}... is beyond the range of a JSON number (IEEE double)") from None
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{x} is not a JSON number (NaN and infinities are rejected)")
    if x == 0:
        return "0"
    text = repr(x)
    if "e" not in text:
        # repr writes 1e-4 <= |x| < 1e16 in positional notation with the shortest round-trip digits, as
        # ECMAScript does for 1e-6 <= |x| < 1e21; only a whole number's ".0" differs
        return text[:-2] if text.endswith(".0") else text
    # repr() gives the shortest digit string that round-trips, as ECMAScript requires, as d[.ddd]e±N
    sign = "-" if x < 0 else ""
    mant, _, exp_text = text.lstrip("-").partition("e")
    digits = mant.replace(".", "").rstrip("0") or "0"
    exp = int(exp_text) + 1 - len(digits)  # value = digits * 10^exp
    k = len(digits)
    n = exp + k  # value = 0.digits * 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mant = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body
