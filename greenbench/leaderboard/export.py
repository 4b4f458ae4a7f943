"""The leaderboard as CSV and as Markdown (for a terminal, a CI summary or a pull request).

Both list every row whole: full did:keys, full CIDs and digests. Markdown has one table per work group
and lane, so measured, estimated and simulated numbers never share a "#" column; CSV has one line per
row with every field of :data:`greenbench.leaderboard.ROW_FIELDS` (lists joined by spaces).

Text from a signed result is someone else's text. Neither output carries a control character (terminal
escape sequences: :func:`~greenbench.leaderboard.access.clean`). A CSV text cell that a spreadsheet would
read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
``'``, as OWASP's "CSV Injection" guidance says; numbers are written as numbers. A Markdown cell escapes
what Markdown or HTML would read (``\``, backticks, ``*``, ``_``, ``[``, ``]``, ``!``, ``|``, ``~``, ``#``,
``<``, ``>``, ``&``, ``@``), so a profile name is never a link, an image, a mention, markup or a broken table.
"""

from __future__ import annotations

import csv
import io

from greenbench.leaderboard import LANE_LABEL, ROW_FIELDS, Board
from greenbench.leaderboard.access import clean
from greenbench.leaderboard.units import si

__all__ = ["to_csv", "to_markdown"]


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str | int | float:
    """A CSV cell: a number as it is; text cleaned of control characters and, when it starts like a
    formula, prefixed with ``'`` (module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    text = clean(" ".join(map(str, value)) if isinstance(value, list) else str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(board: Board) -> str:
    """One CSV line per row, trusted rows first (``trusted`` says which), then the untrusted ones."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ROW_FIELDS)
    for row in board.rows + board.untrusted:
        w.writerow([_csv_cell(row.get(k)) for k in ROW_FIELDS])
    return buf.getvalue()


#: Markdown and HTML significant characters of a cell, and what each becomes.
_MD_ESCAPES = {c: "\\" + c for c in "\\`*_[]!|~#"}
_MD_ESCAPES.update({"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;"})
_MD_TABLE = str.maketrans(_MD_ESCAPES)


def _md(text) -> str:
    """Markdown text (a table cell, a heading): control characters removed, line breaks as spaces, every
    Markdown or HTML significant character escaped (module docstring)."""
    s = "-" if text is None or text == "" else str(text)
    return clean(s).translate(_MD_TABLE)


def _table(rows: list[dict], ranked: bool) -> list[str]:
    head = ["#" if ranked else "", "profile", "backend", "hardware", "J/token", "tokens/s", "TTFT", "g CO2e/1k tok",
            "region", "date", "flags", "signers", "CID"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        flags = " ".join(f for f, on in (("busy", r["flagged"]), ("partial", r["partial"]),
                                         ("below-resolution", r["below_resolution"])) if on)
        out.append("| " + " | ".join(_md(v) for v in (
            r["rank"] if ranked else "", r["profile"], r["backend"], r["hardware"], si(r["j_per_token"], "J"),
            si(r["tokens_per_s"], "tok/s"), si(r["ttft_s"], "s"), si(r["g_co2e_per_1k_tokens"], "g"), r["region"],
            (r["created"] or "")[:10], flags, " ".join(r["signers"]), r["cid"])) + " |")
    return out


def to_markdown(board: Board, title: str = "greenbench leaderboard") -> str:
    """Markdown: per work group, one table per lane; then the results signed by unknown keys."""
    lines = [f"# {_md(title)}", "",
             "Joules per token, lower is better. Ranked within the same work (`workload.digest`) and energy "
             "method: measured (energy counter), ESTIMATED (model) and SIMULATED results are ranked apart.", ""]
    if not board.rows:
        lines += ["No results from trusted signers yet.", ""]
    for group, rows in board.groups().items():
        lines += [f"## work {_md(group)}", ""]
        for lane in ("counter", "estimate", "simulated"):
            mine = [r for r in rows if r["lane"] == lane]
            if mine:
                lines += [f"### {LANE_LABEL[lane]}", ""] + _table(mine, True) + [""]
    if board.untrusted:
        lines += ["## Signed by unknown keys (not ranked)", "",
                  "Valid signatures by keys outside the trust file: `greenbench keys trust add DID` trusts one.", ""]
        lines += _table(board.untrusted, False) + [""]
    if board.skipped:
        lines += ["## Skipped", ""] + [f"- {_md(s['cid'])}: {_md(s['reason'])}" for s in board.skipped] + [""]
    return "\n".join(lines)
