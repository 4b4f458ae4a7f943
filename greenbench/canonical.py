"""Canonical JSON bytes: the JSON Canonicalization Scheme (JCS, RFC 8785).

One encoder feeds result files, signatures and content addresses, so the same document always has
the same bytes. JCS: object members sorted by their UTF-16 code units, no insignificant white space,
strings with the minimal escapes, numbers in the ECMAScript ``Number.prototype.toString`` form.
NaN and infinities are not JSON and are rejected.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["canonical_bytes", "format_number", "json_string"]

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
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digit string that round-trips, as ECMAScript requires.
    _, digits_t, exp = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    trailing = len(digits_t) - len("".join(map(str, digits_t)).rstrip("0"))
    exp += trailing
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
