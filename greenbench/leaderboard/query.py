"""``leaderboard --json`` straight from the store's result index: one query for the columns ranking reads,
:func:`greenbench.leaderboard.rank`, and each row's JSON written from the index's stored static JSON with the
ranking's fields in front, so that a board of 100,000 results needs neither a dictionary nor an encoder
call per row (``tests/benchmarks/bench_leaderboard.py``). ``tests/test_leaderboard.py`` checks that it
writes exactly what :meth:`greenbench.leaderboard.Board.to_json` gives for the same index.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from greenbench.canonical import json_string
from greenbench.leaderboard import _CID, _SIGNERS, _STATIC, LANES, RANK_COLUMNS, _as_row, _matches, rank
from greenbench.leaderboard.fields import FIELDS_VERSION

__all__ = ["board_json"]

#: CIDs and did:keys are base32/base58 text; anything a JSON string must escape sends a row the slow way.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]').search


def _slow(entry) -> str:
    t, m, trusted, position, size = entry
    cids, signers, signer = m if m is not None else ([t[_CID]], [t[_SIGNERS]], t[_SIGNERS])
    static = t[_STATIC]
    return "".join((
        '{"cid":', json_string(t[_CID]), ',"cids":[', ",".join(map(json_string, cids)), '],"signers":[',
        ",".join(map(json_string, signers)), '],"signer":', "null" if signer is None else json_string(signer),
        ',"trusted":', "true" if trusted else "false", ',"rank":', "null" if position is None else str(position),
        ',"lane_size":', "null" if size is None else str(size), ("," + static[1:]) if len(static) > 2 else "}",
    ))


def _texts(entries: list) -> list[str]:
    plain = not _NEEDS_ESCAPE("".join([e[0][_CID] + e[0][_SIGNERS] for e in entries]))
    out = []
    for e in entries:
        t, m, trusted, position, size = e
        if m is None and plain:
            cid, signer = t[_CID], t[_SIGNERS]
            out.append(f'{{"cid":"{cid}","cids":["{cid}"],"signers":["{signer}"],"signer":"{signer}",'
                       f'"trusted":{"true" if trusted else "false"},"rank":{"null" if position is None else position},'
                       f'"lane_size":{"null" if size is None else size},{t[_STATIC][1:]}')
        else:
            out.append(_slow(e))
    return out


assert list(LANES) == sorted(LANES), "the index's order of lanes is their names' order"


def _sorted_by_sqlite(store, trust, trusted_only: bool, include_partial: bool) -> Callable[[Callable], list[bytes]] | None:
    """The common case, faster: no result stored twice, every envelope with one signer, no filter. SQLite
    reads the rows in board order (the sort :func:`greenbench.leaderboard.rank` does: work, lane, ranked
    before unranked, J/token, date, CID) along the index that keeps that order, so nothing is sorted, and
    one pass assigns the ranks. Returns ``emit(write)``, which writes the ranked rows' JSON
    (comma-separated) through ``write`` a few thousand at a time as they are made (100 MB of them are never
    held at once) and returns the untrusted rows'; None when the index holds a duplicate or a multi-signer
    envelope (then :func:`rank` does it all)."""
    # the store's index board_order holds exactly this order (lanes sort by name as LANES lists them)
    order = "ORDER BY work, lane, (j_per_token IS NULL OR partial), coalesce(j_per_token, 0), coalesce(created, ''), cid"
    where = f"WHERE fields = ? AND verdict = 'ok'{'' if include_partial else ' AND NOT partial'}"
    # the static JSON as bytes (a BLOB): it is written out as it is stored, never decoded into str and back
    rows = store.index.read_sql(
        f"SELECT cid, signers, work, lane, j_per_token IS NOT NULL AND NOT partial, CAST(static AS BLOB), sha256 "
        f"FROM board {where} {order}", (FIELDS_VERSION,))
    ids = "".join([r[0] + r[1] for r in rows])
    if "\n" in ids or not ids.isascii() or _NEEDS_ESCAPE(ids) or len({r[6] for r in rows}) != len(rows):
        return None
    keys = getattr(trust, "keys", trust) or frozenset()

    def emit(write: Callable[[bytes], Any]) -> list[bytes]:
        others: list[bytes] = []
        out: list[bytes] = []
        lane: list = []  # the current group and lane's trusted rows: (cid, signer, rank, static)
        here, n, first = None, 0, True

        def flush() -> None:
            nonlocal first
            for cid, signer, position, static in lane:
                out.append(b'{"cid":"%s","cids":["%s"],"signers":["%s"],"signer":"%s","trusted":true,"rank":%s,'
                           b'"lane_size":%d,%s' % (cid, cid, signer, signer,
                                                   b"null" if position is None else b"%d" % position, n, static[1:]))
            lane.clear()
            if len(out) >= _STEP:
                write((b"" if first else b",") + b",".join(out))
                out.clear()
                first = False

        for i, (cid_text, signer_text, work, lane_name, rankable, static, _) in enumerate(rows):
            rows[i] = None  # its bytes are freed once written: the next rows' reuse that memory
            cid, signer = cid_text.encode("ascii"), signer_text.encode("ascii")  # checked: no escapes, no newline
            if signer_text in keys:
                if (work, lane_name) != here:
                    flush()
                    here, n = (work, lane_name), 0
                if rankable:
                    n += 1
                    lane.append((cid, signer, n, static))
                else:
                    lane.append((cid, signer, None, static))
            elif not trusted_only:
                others.append(b'{"cid":"%s","cids":["%s"],"signers":["%s"],"signer":"%s","trusted":false,'
                              b'"rank":null,"lane_size":null,%s' % (cid, cid, signer, signer, static[1:]))
        flush()
        if out:
            write((b"" if first else b",") + b",".join(out))
        return others

    return emit


#: Rows per write: a few MB.
_STEP = 4000


def _write_json(write, rows, others: list[bytes], skipped: list[dict]) -> None:
    """``{"rows", "untrusted", "skipped"}`` through ``write`` a few thousand rows at a time (a board of 100,000
    rows is over 100 MB: never one more copy of it than needed). ``rows``: the ranked rows' JSON, or a
    function that writes them (comma-separated) and returns ``others`` (:func:`_sorted_by_sqlite`)."""
    write(b'{"rows":[')
    if callable(rows):
        others = rows(write)
    else:
        for i in range(0, len(rows), _STEP):
            write((b"," if i else b"") + b",".join(rows[i:i + _STEP]))
    write(b'],"untrusted":[')
    for i in range(0, len(others), _STEP):
        write((b"," if i else b"") + b",".join(others[i:i + _STEP]))
    write(b'],"skipped":' + json.dumps(skipped, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"}")


def board_json(store, trust, *, trusted_only: bool = False, include_partial: bool = False,
               filters: dict[str, Any] | None = None, write=None) -> bytes | None:
    """``{"rows", "untrusted", "skipped"}`` of the store's index as JSON (``leaderboard --json``): returned as
    bytes, or, given ``write``, passed to it in pieces (and None returned)."""
    stale = [{"cid": cid, "reason": "indexed by an older greenbench: run `greenbench store reindex`"}
             for cid in store.stale_results(FIELDS_VERSION)]
    wanted = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    fast = None if wanted else _sorted_by_sqlite(store, trust, trusted_only, include_partial)
    if fast is not None:
        bad = store.index.read_sql("SELECT cid, verdict FROM board WHERE fields = ? AND verdict IS NOT 'ok' ORDER BY rowid",
                                   (FIELDS_VERSION,))
        rows, others, skipped = fast, [], stale + [{"cid": c, "reason": v or "not verified"} for c, v in bad]
    else:
        table = store.board_rows(FIELDS_VERSION, None if wanted else RANK_COLUMNS)
        ranked, untrusted, found = rank(table, trust, trusted_only=trusted_only, include_partial=include_partial)
        if wanted:  # filters read any field: through the row objects
            ranked = [e for e in ranked if _matches(_as_row(e), wanted)]
            untrusted = [e for e in untrusted if _matches(_as_row(e), wanted)]
        rows, others = [t.encode("utf-8") for t in _texts(ranked)], [t.encode("utf-8") for t in _texts(untrusted)]
        skipped = stale + found
    if write is not None:
        _write_json(write, rows, others, skipped)
        return None
    parts: list[bytes] = []
    _write_json(parts.append, rows, others, skipped)
    return b"".join(parts)
