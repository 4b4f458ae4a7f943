"""Leaderboard: signed results of the same work, ranked honestly.

Terms (the record fields, group, lane and primary metric: :mod:`greenbench.leaderboard.fields`):
    trusted: a result at least one of whose signers the trust policy names (:mod:`greenbench.trust`;
        without a trust file, the local signing key alone). Only trusted results are ranked; the others
        are listed apart as "signed by unknown keys" (``untrusted``), or hidden with ``trusted_only``.
    duplicate: two stored envelopes with the same in-toto subject digest are the same result, whoever
        signed them: one row, listing every signer (``signers``) and every envelope (``cids``). A ranked
        row's ``cid`` (its page, raw block and CAR) is an envelope a trusted key signed, even when an
        unknown key stored the result first.
    rank: 1..n within a group and lane, among the trusted, complete (not ``partial``) results that have a
        value of the primary metric, lower first (ties: earlier ``created``, then CID). Rows measured on a
        busy machine (``flagged``) are ranked and marked. A row whose primary phase was below the meters'
        resolution has no value and no rank. Filters choose which rows are shown; they never change a
        rank, so "#3" means third in its group and lane however the table is filtered or sorted.
    skipped: stored results that cannot be listed: a validly signed result with a malformed field, or one
        whose block no longer verifies (``greenbench store verify``), each with its reason.

The board is built from the records the store's result index keeps (one query, no envelope re-read:
:func:`from_store`), or from records made from verified envelopes (:func:`build`, for ``--from URL``).
Renderers: :mod:`.export` (CSV, Markdown), :mod:`.html` (pages and SVG charts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from greenbench.canonical import json_string
from greenbench.leaderboard.fields import DYNAMIC, FIELDS_VERSION, LANES, static_json

__all__ = ["Board", "Row", "build", "from_store", "FILTERS", "SORT_KEYS", "LANE_LABEL", "ROW_FIELDS"]

#: How each lane is named where people read it.
LANE_LABEL = {"counter": "measured (energy counter)", "estimate": "ESTIMATED (model)", "simulated": "SIMULATED"}
#: Row fields that filters match exactly (``signer`` matches any of a row's signers).
FILTERS = ("group", "profile", "backend", "method", "hardware", "region", "signer", "kind")
#: Row fields a table can be sorted by (``-`` prefix: descending).
SORT_KEYS = ("rank", "profile", "backend", "hardware", "method", "j_per_token", "prefill_j_per_token",
             "tokens_per_s", "ttft_s", "g_co2e_per_1k_tokens", "region", "created", "batch_size")
#: The fields of a row, in the order CSV columns and the documentation list them.
ROW_FIELDS = (
    "group", "group_basis", "task", "lane", "rank", "lane_size", "method", "profile", "profile_digest", "kind", "backend",
    "hardware", "region", "created", "batch_size", "sweep", "metric", "j_per_token", "prefill_j_per_token",
    "decode_j_per_token", "train_j_per_token", "tokens_per_s", "prefill_tokens_per_s", "ttft_s", "energy_j",
    "g_co2e_per_1k_tokens", "flagged", "partial", "below_resolution", "trusted", "signer", "signers", "cid", "cids",
    "sha256",
)

# The positions of a Row (a list): the index's columns (greenbench.store.index.BOARD_SELECT, "work" read
# as "group"), then the fields ranking adds.
_COLUMNS = ("cid", "sha256", "signers", "group", "lane", "partial", "j_per_token", "created", "verdict", "static",
            "profile", "backend", "hardware", "region", "kind", "tokens_per_s", "ttft_s", "g_co2e_per_1k_tokens",
            "prefill_j_per_token", "batch_size", "sweep", "task")
#: Ranking reads only the first RANK_COLUMNS of a row.
RANK_COLUMNS = 10
_ADDED = ("cids", "signer", "trusted", "rank", "lane_size", "_fields")
_AT = {name: i for i, name in enumerate(_COLUMNS + _ADDED)}
(_CID, _SHA, _SIGNERS, _GROUP, _LANE, _PARTIAL, _JPT, _CREATED) = range(8)
_VERDICT, _STATIC, _CIDS, _SIGNER, _TRUSTED, _RANK, _LANE_SIZE, _FIELDS = (
    _AT["verdict"], _AT["static"], _AT["cids"], _AT["signer"], _AT["trusted"], _AT["rank"], _AT["lane_size"], _AT["_fields"])


class Row(list):
    """One leaderboard row: read it like a dict (``row["j_per_token"]``, ``row.get("sweep")``) or by
    attribute (templates). The columns the board ranks, filters and sorts by are kept as read from the
    index; the other fields are decoded from the stored static JSON on first use, so that a board of
    100,000 rows is built and written without making 100,000 dictionaries."""

    __slots__ = ()

    def __getitem__(self, key):
        if isinstance(key, str):
            at = _AT.get(key)
            if at is not None and key != "_fields":
                value = list.__getitem__(self, at)
                return bool(value) if key == "partial" else value
            return self.fields()[key]
        return list.__getitem__(self, key)

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and (key in _AT or key in self.fields())

    def fields(self) -> dict:
        """The static fields (decoded once)."""
        got = list.__getitem__(self, _FIELDS)
        if got is None:
            got = json.loads(list.__getitem__(self, _STATIC))
            list.__setitem__(self, _FIELDS, got)
        return got

    def to_dict(self) -> dict:
        """Every field of the row as a plain dict (:data:`ROW_FIELDS`)."""
        out = dict(self.fields())
        for k in DYNAMIC:
            out[k] = self[k]
        return out

    def json_text(self) -> str:
        """The row as JSON: the stored static JSON with the dynamic fields in front."""
        g = list.__getitem__
        rank, size, signer = g(self, _RANK), g(self, _LANE_SIZE), g(self, _SIGNER)
        static = g(self, _STATIC)
        return "".join((
            '{"cid":', json_string(g(self, _CID)), ',"cids":[', ",".join(map(json_string, g(self, _CIDS))),
            '],"signers":[', ",".join(map(json_string, g(self, _SIGNERS))), '],"signer":',
            "null" if signer is None else json_string(signer), ',"trusted":', "true" if g(self, _TRUSTED) else "false",
            ',"rank":', "null" if rank is None else str(rank), ',"lane_size":', "null" if size is None else str(size),
            ("," + static[1:]) if len(static) > 2 else "}",
        ))


def _tuple_of(rec: dict) -> tuple:
    """A row tuple (:data:`greenbench.store.index.BOARD_SELECT` order) from a record dict
    (:func:`greenbench.leaderboard.fields.record` with ``cid`` and ``verdict``; a record whose verdict is
    not ``ok`` may lack the rest)."""
    if rec.get("verdict") != "ok":
        return tuple(rec.get(k) for k in _COLUMNS)
    static = rec.get("static") or static_json(rec)
    return tuple("\n".join(rec["signers"]) if k == "signers" else static if k == "static" else rec.get(k)
                 for k in _COLUMNS)


@dataclass
class Board:
    """A ranked leaderboard.

    Attributes:
        rows: trusted results, by group, lane, rank (unranked last).
        untrusted: results signed only by keys the trust policy does not name (never ranked).
        skipped: ``{"cid", "reason"}`` of stored results that cannot be listed.
    """

    rows: list = field(default_factory=list)
    untrusted: list = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"rows": [r.to_dict() for r in self.rows], "untrusted": [r.to_dict() for r in self.untrusted],
                "skipped": self.skipped}

    def json_bytes(self, rows: list | None = None, untrusted: list | None = None, **extra: Any) -> bytes:
        """``{"rows", "untrusted", "skipped"}`` as compact JSON, assembled from each row's stored JSON."""
        rows = self.rows if rows is None else rows
        untrusted = self.untrusted if untrusted is None else untrusted
        parts = ['{"rows":[', ",".join([r.json_text() for r in rows]), '],"untrusted":[',
                 ",".join([r.json_text() for r in untrusted]), '],"skipped":',
                 json.dumps(self.skipped, ensure_ascii=False, separators=(",", ":"))]
        for k, v in extra.items():
            parts.append(f',"{k}":{json.dumps(v)}')
        parts.append("}")
        return "".join(parts).encode("utf-8")

    def groups(self, rows: list | None = None) -> dict[str, list]:
        """Rows by group, in order."""
        out: dict[str, list] = {}
        for r in self.rows if rows is None else rows:
            out.setdefault(_get(r, _GROUP), []).append(r)
        return out


_LANE_ORDER = {lane: i for i, lane in enumerate(LANES)}
_get = list.__getitem__


def rank(rows: list, trust, *, trusted_only: bool = False, include_partial: bool = False):
    """The ranking rules (module docstring) over rows whose first :data:`RANK_COLUMNS` are those of
    :data:`greenbench.store.index.BOARD_SELECT` (tuples or :class:`Row` lists; ``signers`` as text joined
    by "\n"), oldest first.

    Written for 100,000 rows: one pass to merge duplicates and sort out trust, then one sort of tuples the C
    code compares. Returns ``(ranked, untrusted, skipped)``: the first two lists of
    ``[row, merged, trusted, rank, lane_size]`` in board order, where ``merged`` is ``(cids, signers, signer)``
    for a result stored more than once or signed by several keys, and None for the common case (one
    envelope, one signer: the row's own CID and signer).
    """
    keys = getattr(trust, "keys", trust) or frozenset()
    skipped = [{"cid": t[_CID], "reason": t[_VERDICT] or "not verified"} for t in rows if t[_VERDICT] != "ok"]
    ok = [t for t in rows if t[_VERDICT] == "ok"] if skipped else rows
    merged: dict[int, tuple[list, list]] = {}
    #: the envelopes of a result stored more than once: (row tuple, its own signers), in store order
    copies: dict[int, list[tuple[tuple, list]]] = {}
    if len({t[_SHA] for t in ok}) != len(ok):  # the same result stored again (another signer, another spelling)
        first: dict[str, tuple] = {}
        for t in ok:
            got = first.get(t[_SHA])
            signers = t[_SIGNERS].split("\n") if t[_SIGNERS] else []
            if got is None:
                first[t[_SHA]] = t
                merged[id(t)] = (list(signers), [t[_CID]])
                copies[id(t)] = [(t, signers)]
            else:
                have, cids = merged[id(got)]
                have.extend(s for s in signers if s not in have)
                cids.append(t[_CID])
                copies[id(got)].append((t, signers))
        ok = list(first.values())
    if not include_partial:
        ok = [t for t in ok if not t[_PARTIAL]]
    trusted_rows: list = []
    other_rows: list = []
    for t in ok:
        text = t[_SIGNERS]
        m = merged.get(id(t)) if merged else None
        if m is None and "\n" not in text:  # one envelope, one signer
            if text in keys:
                trusted_rows.append((t, None))
            elif not trusted_only:
                other_rows.append((t, None))
            continue
        signers, cids = m if m is not None else (text.split("\n"), [t[_CID]])
        good = [s for s in signers if s in keys]
        if good:
            if m is not None and not any(s in keys for s in copies[id(t)][0][1]):
                # stored first by an unknown key: the row (its CID, raw and CAR links, page) is the first
                # envelope a trusted key signed, the others listed after it
                t = next(c for c, own in copies[id(t)] if any(s in keys for s in own))
                cids = [t[_CID]] + [c for c in cids if c != t[_CID]]
            trusted_rows.append((t, (cids, signers, good[0])))
        elif not trusted_only:
            other_rows.append((t, (cids, signers, signers[0] if signers else None)))

    def ordered(items: list) -> list:
        decorated = [(t[_GROUP], _LANE_ORDER.get(t[_LANE], 9), t[_JPT] is None or bool(t[_PARTIAL]),
                      0.0 if t[_JPT] is None else t[_JPT], t[_CREATED] or "", t[_CID], i) for i, (t, _) in enumerate(items)]
        decorated.sort()
        return [items[d[-1]] for d in decorated]

    ranked: list = []
    here, n, start = None, 0, 0
    for t, m in ordered(trusted_rows):
        lane = (t[_GROUP], t[_LANE])
        if lane != here:
            for k in range(start, len(ranked)):
                ranked[k][4] = n
            here, n, start = lane, 0, len(ranked)
        position = None
        if t[_JPT] is not None and not t[_PARTIAL]:
            n += 1
            position = n
        ranked.append([t, m, True, position, None])
    for k in range(start, len(ranked)):
        ranked[k][4] = n
    untrusted = [[t, m, False, None, None] for t, m in ordered(other_rows)]
    return ranked, untrusted, skipped


def _as_row(entry) -> Row:
    t, m, trusted, position, size = entry
    row = Row(t)
    if m is None:
        signer = t[_SIGNERS]
        row.extend(([t[_CID]], signer, trusted, position, size, None))
        row[_SIGNERS] = [signer] if signer else []
    else:
        cids, signers, signer = m
        row.extend((cids, signer, trusted, position, size, None))
        row[_SIGNERS] = signers
    return row


def build(records: Iterable, trust, *, trusted_only: bool = False, include_partial: bool = False,
          filters: dict[str, Any] | None = None, skipped: list[dict] | None = None) -> Board:
    """Rank records (module docstring; the rules are :func:`rank`'s).

    Args:
        records: rows in :data:`greenbench.store.index.BOARD_SELECT` order, or record dicts
            (:func:`greenbench.leaderboard.fields.record` with ``cid`` and ``verdict``: ``ok``, or why the
            result cannot be listed), oldest first (the first envelope of a duplicate names the row).
        trust: the trusted did:keys (a set or a :class:`greenbench.trust.Trust`).
        trusted_only: leave the untrusted results out.
        include_partial: list results of interrupted runs too (never ranked).
        filters: ``{field: value}`` of :data:`FILTERS`; None values are ignored.
        skipped: skipped entries found before (e.g. envelopes that did not verify), kept first.
    """
    rows = [tuple(list.__getitem__(r, slice(0, len(_COLUMNS)))) if isinstance(r, Row)
            else r if isinstance(r, (tuple, list)) else _tuple_of(r) for r in records]
    ranked, untrusted, bad = rank(rows, trust, trusted_only=trusted_only, include_partial=include_partial)
    board = Board(rows=[_as_row(e) for e in ranked], untrusted=[_as_row(e) for e in untrusted],
                  skipped=list(skipped or []) + bad)
    wanted = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    if wanted:
        board.rows = [r for r in board.rows if _matches(r, wanted)]
        board.untrusted = [r for r in board.untrusted if _matches(r, wanted)]
    return board


def _matches(row, wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "signer":
            if value not in row["signers"]:
                return False
        elif key == "method":
            if row["lane"] != value:
                return False
        elif row.get(key) != value:
            return False
    return True


def from_store(store, trust, **options: Any) -> Board:
    """:func:`build` over the store's result index (one query; no block is read). Rows an older greenbench
    indexed without the leaderboard's fields are left out and named in ``skipped`` (the layer above
    extracts them again first: :func:`greenbench.publish.refresh_index`)."""
    stale = store.stale_results(FIELDS_VERSION)
    return build(store.board_rows(FIELDS_VERSION), trust, skipped=[
        {"cid": cid, "reason": "indexed by an older greenbench: run `greenbench store reindex`"} for cid in stale
    ], **options)
