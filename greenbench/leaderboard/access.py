"""Typed reading of a result document for display: any JSON shape in, a value of the wanted type or
None out (pure; no exceptions).

A result page shows a validly signed document whoever made it, so every field may have any JSON type:
``"profile": "just-a-string"``, ``"window_s": "x"``, ``"j_per_token_samples": 5``, an integer beyond the
float range. :class:`Fields` reads a dotted path and gives the value only when it has the type the page
expects: a wrong type reads as absent (a number, a flag, a table, a list), or, for text, as its JSON
spelling (the page escapes it), so a page never raises on a document's shape.

Terms:
    text: a string with its control characters (C0 but tab, DEL, C1: terminal escape sequences) removed
        (:func:`clean`); a page, a CSV or a Markdown export never carries one.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["Fields", "clean", "finite"]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Longest JSON spelling of a non-string value shown where text was expected.
RAW_MAX = 200


def clean(text: str, lines: bool = False) -> str:
    """``text`` without control characters (module docstring): newlines and carriage returns become
    spaces, or stay with ``lines`` (a page's ``<pre>``)."""
    if lines:
        return _CONTROL_BUT_LINES.sub("", text)
    return _CONTROL.sub(lambda m: " " if m.group() in "\n\r" else "", text)


def finite(value: Any) -> bool:
    """A JSON number (not a boolean) that a float holds and is finite (an int beyond 1.8e308 is not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class Fields:
    """Typed reads of one document (module docstring). ``path`` is dotted: ``"metrics.decode.window_s"``."""

    def __init__(self, doc: Any):
        self.doc = doc

    def get(self, path: str) -> Any:
        """The raw value at ``path``, None where a step is not an object."""
        value = self.doc
        for part in path.split(".") if path else ():
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    def at(self, path: str) -> "Fields":
        """The sub-document at ``path`` (reads of it give None when it is not an object)."""
        return Fields(self.get(path))

    def text(self, path: str) -> str | None:
        """A string (cleaned); another scalar or a container as its JSON spelling (cut at
        :data:`RAW_MAX` characters); None when absent."""
        return as_text(self.get(path))

    def num(self, path: str) -> int | float | None:
        """A finite number, else None."""
        value = self.get(path)
        return value if finite(value) else None

    def count(self, path: str) -> int | None:
        """A non-negative integer that fits in 64 bits, else None."""
        value = self.get(path)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None

    def flag(self, path: str) -> bool:
        """True only for the JSON value true."""
        return self.get(path) is True

    def table(self, path: str) -> dict:
        """An object, else ``{}``."""
        value = self.get(path)
        return value if isinstance(value, dict) else {}

    def tables(self, path: str) -> list[dict]:
        """The objects of a list (other items dropped); ``[]`` when not a list."""
        value = self.get(path)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    def nums(self, path: str) -> list[int | float]:
        """The finite numbers of a list (other items dropped); ``[]`` when not a list."""
        value = self.get(path)
        return [v for v in value if finite(v)] if isinstance(value, list) else []

    def texts(self, path: str) -> list[str]:
        """The strings of a list, cleaned (other items dropped); ``[]`` when not a list."""
        value = self.get(path)
        return [clean(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def as_text(value: Any) -> str | None:
    """:meth:`Fields.text` of one value."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value)
    try:
        raw = json.dumps(value, ensure_ascii=False, default=str, allow_nan=True)
    except (ValueError, TypeError, RecursionError):
        raw = type(value).__name__
    return clean(raw if len(raw) <= RAW_MAX else raw[:RAW_MAX] + "…")
