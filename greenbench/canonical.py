"""Canonical JSON bytes: the JSON Canonicalization Scheme (JCS, RFC 8785).

One encoder feeds result files, signatures and content addresses, so the same document always has
the same bytes. JCS: object members sorted by their UTF-16 code units, no insignificant white space,
strings with the minimal escapes, numbers in the ECMAScript ``Number.prototype.toString`` form.
NaN and infinities are not JSON and are rejected.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

__all__ = ["canonical_bytes", "format_number", "json_string"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = frozenset(chr(i) for i in range(0x20)) | {'"', "\\"}


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` (dict/list/str/int/float/bool/None) as JCS UTF-8 bytes.

    Raises:
        ValueError: NaN/infinity, a non-string key, or an unsupported type.
    """
    parts: list[str] = []
    try:
        _encode(value, parts)
    except RecursionError:
        raise ValueError("document nested too deeply to encode") from None
    return "".join(parts).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json_string(value))
    elif isinstance(value, (int, float)):
        out.append(format_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"JSON object keys must be strings, got {type(key).__name__}: {key!r}")
        out.append("{")
        first = True
        for key in sorted(value, key=lambda k: k.encode("utf-16-be")):
            if not first:
                out.append(",")
            first = False
            out.append(json_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise ValueError(f"cannot encode {type(value).__name__} as JSON: {value!r}")


def json_string(s: str) -> str:
    """A JSON string literal with the minimal escapes (RFC 8785 section 3.2.2.2; DAG-JSON uses the same)."""
    if not any(c in _NEEDS_ESCAPE for c in s):
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
