"""Numbers as people read them: SI prefixes (8.52e-05 J is 85.2 µJ), three significant digits.

Machine outputs (JSON, CSV) keep the exact numbers; these strings are for tables, pages and charts.
"""

from __future__ import annotations

from greenbench.leaderboard.access import finite

__all__ = ["si", "rate"]

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"),
             (1e-15, "f"), (1e-18, "a"))


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """``value`` with an SI prefix: si(8.516e-05, "J") -> "85.2 µJ"; None -> "-". Tokens per second are
    written without a prefix (:func:`rate`)."""
    if not finite(value):  # None, a string, an int beyond the float range: nothing to show
        return "-"
    if unit == "tok/s":
        return rate(value)
    if value == 0:
        return f"0 {unit}"
    a = abs(value)
    for scale, prefix in _PREFIXES:
        if a >= scale * 0.9995:
            text = f"{value / scale:.{digits}g}"
            if "e" in text:  # 1000 of a prefix rounds up to the next one
                continue
            return f"{text} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def rate(value: float | None) -> str:
    """Tokens per second: whole tokens with thousands separators from 100 on, else 3 significant digits."""
    if not finite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f} tok/s"
    return f"{value:.3g} tok/s"
