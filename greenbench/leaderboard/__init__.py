"""Leaderboard: ranks of shared, verified results.

Only results whose DSSE signature verified (and whose block matched its CID) reach the leaderboard.
Results are ranked within a *group*: the same profile configuration (``profile.digest``) and workload
kind, so only runs that did the same work are compared. Within a group the rank is by joules per token
(decode for inference, train for training), lower first. The energy method of each row is shown
beside its number, so an estimate is never read as a measurement; ``method=`` filters to one kind.
"""

from __future__ import annotations

import math

from greenbench.results import get_path


def _primary(doc: dict) -> tuple[str, float | None]:
    if get_path(doc, "workload.kind", None) == "training":
        return "train.j_per_token", get_path(doc, "metrics.train.j_per_token", None)
    return "decode.j_per_token", get_path(doc, "metrics.decode.j_per_token", None)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _malformed(doc: dict) -> str | None:
    """Why a (validly signed) result cannot be ranked, or None. Signed is not the same as well-formed."""
    if not isinstance(doc, dict):
        return "the result is not a JSON object"
    _, value = _primary(doc)
    if value is not None and (not _number(value) or value < 0):
        return "its joules per token is not a non-negative number"
    for path in ("metrics.decode.tokens_per_s", "metrics.train.tokens_per_s", "carbon.g_co2e_per_1k_tokens"):
        v = get_path(doc, path, None)
        if v is not None and not _number(v):
            return f"{path} is not a number"
    for path in ("profile.name", "profile.digest", "energy.method", "backend"):
        v = get_path(doc, path, None)
        if v is not None and not isinstance(v, str):
            return f"{path} is not a string"
    gpus = get_path(doc, "environment.gpu_models", None)
    if gpus is not None and not (isinstance(gpus, list) and all(isinstance(g, str) for g in gpus)):
        return "environment.gpu_models is not a list of names"
    return None


def build_rows(entries: list[dict], *, method: str | None = None, profile: str | None = None,
               include_partial: bool = False, skipped: list[dict] | None = None) -> list[dict]:
    """Rank verified entries.

    Args:
        entries: dicts with ``result`` (the result document), ``signer`` (did:key) and ``cid``.
        method: keep only rows whose ``energy.method`` is this (``counter``, ``estimate``, ``simulated``).
        profile: keep only this profile name.
        include_partial: keep results of interrupted runs (off by default).
        skipped: if given, malformed results are appended here as ``{"cid", "reason"}``.

    Returns:
        rows sorted by group then rank, each a flat JSON-ready dict.
    """
    rows = []
    for e in entries:
        doc = e["result"]
        why = _malformed(doc)
        if why:
            if skipped is not None:
                skipped.append({"cid": e.get("cid"), "reason": f"malformed result: {why}"})
            continue
        if not include_partial and doc.get("partial"):
            continue
        if method and get_path(doc, "energy.method", None) != method:
            continue
        if profile and get_path(doc, "profile.name", None) != profile:
            continue
        metric, value = _primary(doc)
        if value is None:
            continue
        kind = get_path(doc, "workload.kind", None)
        gpus = get_path(doc, "environment.gpu_models", None) or []
        rows.append({
            "group": f"{get_path(doc, 'profile.name', '?')}@{str(get_path(doc, 'profile.digest', ''))[7:19]}:{kind}",
            "profile": get_path(doc, "profile.name", None),
            "profile_digest": get_path(doc, "profile.digest", None),
            "workload": kind,
            "backend": doc.get("backend"),
            "hardware": ", ".join(gpus) if gpus else get_path(doc, "environment.cpu_model", None),
            "metric": metric,
            "j_per_token": value,
            "tokens_per_s": get_path(doc, f"metrics.{metric.split('.')[0]}.tokens_per_s", None),
            "method": get_path(doc, "energy.method", None),
            "g_co2e_per_1k_tokens": get_path(doc, "carbon.g_co2e_per_1k_tokens", None),
            "region": get_path(doc, "carbon.region", None),
            "signer": e.get("signer"),
            "cid": e.get("cid"),
            "created": doc.get("created"),
        })
    rows.sort(key=lambda r: (r["group"], r["j_per_token"]))
    rank, prev = 0, None
    for r in rows:
        rank = rank + 1 if r["group"] == prev else 1
        prev = r["group"]
        r["rank"] = rank
    return rows


def render_html(rows: list[dict], title: str = "greenbench leaderboard") -> str:
    """A self-contained HTML page of the rows (every value escaped)."""
    from html import escape

    def cell(v, num=False):
        if v is None:
            return "<td>-</td>"
        if num:
            return f'<td class="n">{escape(f"{v:.4g}")}</td>'
        return f"<td>{escape(str(v))}</td>"

    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:.3em .6em}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#eee}.estimate{color:#a60}.simulated{color:#06a}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p>Verified, signed results. Joules per token, lower is better. The method column says how each "
        "number was obtained: <b>counter</b> (hardware energy counter), <b>estimate</b> (model), <b>simulated</b>.</p>",
    ]
    if not rows:
        parts.append("<p>No verified results yet.</p>")
    for group, grows in groups.items():
        parts.append(f"<h2>{escape(group)}</h2><table><tr><th>#</th><th>backend</th><th>hardware</th><th>J/token</th>"
                     "<th>method</th><th>tokens/s</th><th>g CO2e / 1k tokens</th><th>region</th><th>signer</th><th>CID</th></tr>")
        for r in grows:
            signer = r["signer"] or ""
            parts.append(
                "<tr>" + cell(r["rank"]) + cell(r["backend"]) + cell(r["hardware"]) + cell(r["j_per_token"], True)
                + f'<td class="{escape(str(r["method"]))}">{escape(str(r["method"]))}</td>'
                + cell(r["tokens_per_s"], True) + cell(r["g_co2e_per_1k_tokens"], True) + cell(r["region"])
                + f'<td title="{escape(signer)}">{escape(signer[:16] + "…" if len(signer) > 16 else signer)}</td>'
                + cell(r["cid"]) + "</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
