"""Leaderboard: signed results of the same work, ranked honestly.

Terms (the record fields, group, lane and primary metric: :mod:`greenbench.leaderboard.fields`):
    trusted: a result at least one of whose signers the trust policy names (:mod:`greenbench.trust`;
        without a trust file, the local signing key alone). Only trusted results are ranked; the others
        are listed apart as "signed by unknown keys" (``untrusted``), or hidden with ``trusted_only``.
    duplicate: two stored envelopes with the same in-toto subject digest are the same result, whoever
        signed them: one row, listing every signer (``signers``) and every envelope (``cids``).
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

from greenbench.leaderboard.fields import FIELDS_VERSION, LANES

__all__ = ["Board", "build", "from_store", "FILTERS", "SORT_KEYS", "LANE_LABEL", "ROW_FIELDS"]

#: How each lane is named where people read it.
LANE_LABEL = {"counter": "measured (energy counter)", "estimate": "ESTIMATED (model)", "simulated": "SIMULATED"}
#: Row fields that filters match exactly (``signer`` matches any of a row's signers).
FILTERS = ("group", "profile", "backend", "method", "hardware", "region", "signer", "kind")
#: Row fields a table can be sorted by (``-`` prefix: descending).
SORT_KEYS = ("rank", "profile", "backend", "hardware", "method", "j_per_token", "prefill_j_per_token",
             "tokens_per_s", "ttft_s", "g_co2e_per_1k_tokens", "region", "created", "batch_size")
#: The fields of a row, in the order CSV columns and the documentation list them.
ROW_FIELDS = (
    "group", "group_basis", "lane", "rank", "lane_size", "method", "profile", "profile_digest", "kind", "backend",
    "hardware", "region", "created", "batch_size", "sweep", "metric", "j_per_token", "prefill_j_per_token",
    "decode_j_per_token", "train_j_per_token", "tokens_per_s", "prefill_tokens_per_s", "ttft_s", "energy_j",
    "g_co2e_per_1k_tokens", "flagged", "partial", "below_resolution", "trusted", "signer", "signers", "cid", "cids",
    "sha256",
)

_BOOLS = ("partial", "flagged", "below_resolution")


@dataclass
class Board:
    """A ranked leaderboard.

    Attributes:
        rows: trusted results, by group, lane, rank (unranked last).
        untrusted: results signed only by keys the trust policy does not name (never ranked).
        skipped: ``{"cid", "reason"}`` of stored results that cannot be listed.
    """

    rows: list[dict] = field(default_factory=list)
    untrusted: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"rows": self.rows, "untrusted": self.untrusted, "skipped": self.skipped}

    def json_bytes(self) -> bytes:
        """The board as compact JSON (the C encoder: a board of 100,000 rows is tens of megabytes)."""
        return json.dumps(self.to_json(), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    def groups(self, rows: list[dict] | None = None) -> dict[str, list[dict]]:
        """Rows by group, in order."""
        out: dict[str, list[dict]] = {}
        for r in self.rows if rows is None else rows:
            out.setdefault(r["group"], []).append(r)
        return out


def _sort_key(r: dict) -> tuple:
    value = r["j_per_token"]
    return (r["group"], LANES.index(r["lane"]) if r["lane"] in LANES else len(LANES), value is None or r["partial"],
            value if value is not None else 0.0, r["created"] or "", r["cid"])


def build(records: Iterable[dict], trust, *, trusted_only: bool = False, include_partial: bool = False,
          filters: dict[str, Any] | None = None, skipped: list[dict] | None = None) -> Board:
    """Rank records (module docstring).

    Args:
        records: flat records (:func:`greenbench.leaderboard.fields.record`) with ``cid`` and ``verdict``
            (``ok``, or why the result cannot be listed), oldest first (the first envelope of a duplicate
            names the row).
        trust: the trusted did:keys (a set or a :class:`greenbench.trust.Trust`).
        trusted_only: leave the untrusted results out.
        include_partial: list results of interrupted runs too (never ranked).
        filters: ``{field: value}`` of :data:`FILTERS`; None values are ignored.
        skipped: skipped entries found before (e.g. envelopes that did not verify), kept first.
    """
    keys = getattr(trust, "keys", trust) or frozenset()
    board = Board(skipped=list(skipped or []))
    by_digest: dict[str, dict] = {}
    for rec in records:
        if rec.get("verdict") != "ok":
            board.skipped.append({"cid": rec.get("cid"), "reason": rec.get("verdict") or "not verified"})
            continue
        same = by_digest.get(rec["sha256"])
        if same is not None:  # the same result, stored again (another signer, another spelling)
            for s in rec["signers"]:
                if s not in same["signers"]:
                    same["signers"].append(s)
            same["cids"].append(rec["cid"])
            continue
        row = dict(rec)
        row["signers"] = list(rec["signers"])
        row["cids"] = [rec["cid"]]
        by_digest[rec["sha256"]] = row
    ranked: list[dict] = []
    for row in by_digest.values():
        row.pop("verdict", None)
        row.pop("fields", None)
        if row["partial"] and not include_partial:
            continue
        trusted = [s for s in row["signers"] if s in keys]
        row["trusted"] = bool(trusted)
        row["signer"] = trusted[0] if trusted else row["signers"][0]
        row["rank"] = None
        row["lane_size"] = None
        if trusted:
            ranked.append(row)
        elif not trusted_only:
            board.untrusted.append(row)
    ranked.sort(key=_sort_key)
    lane, n, members = None, 0, []
    for row in ranked:
        here = (row["group"], row["lane"])
        if here != lane:
            for m in members:
                m["lane_size"] = n
            lane, n, members = here, 0, []
        if row["j_per_token"] is not None and not row["partial"]:
            n += 1
            row["rank"] = n
        members.append(row)
    for m in members:
        m["lane_size"] = n
    board.untrusted.sort(key=_sort_key)
    wanted = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    if wanted:
        board.rows = [r for r in ranked if _matches(r, wanted)]
        board.untrusted = [r for r in board.untrusted if _matches(r, wanted)]
    else:
        board.rows = ranked
    return board


def _matches(row: dict, wanted: dict[str, Any]) -> bool:
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
    rows, stale = store.board_rows(FIELDS_VERSION)
    return build(records_of(rows), trust, skipped=[
        {"cid": cid, "reason": "indexed by an older greenbench: run `greenbench store reindex`"} for cid in stale
    ], **options)


def records_of(rows: list[tuple]) -> list[dict]:
    """Records from the index's row tuples (:data:`greenbench.store.index.BOARD_KEYS` order)."""
    from greenbench.store.index import BOARD_KEYS

    keys = BOARD_KEYS
    i_signers, i_gpus = keys.index("signers"), keys.index("gpu_models")
    out = []
    for row in rows:
        rec = dict(zip(keys, row))
        signers = row[i_signers]
        rec["signers"] = signers.split("\n") if signers else []
        gpus = row[i_gpus]
        rec["gpu_models"] = json.loads(gpus) if gpus and gpus != "[]" else []
        for b in _BOOLS:
            rec[b] = bool(rec[b])
        rec["method"] = rec["lane"]
        out.append(rec)
    return out
