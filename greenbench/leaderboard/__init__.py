"""Leaderboard: ranks of shared, verified results.

Only results whose DSSE signature verified (and whose block matched its CID) reach the leaderboard.
Results are ranked within a *group*: the same profile configuration (``profile.digest``) and workload
kind, so only runs that did the same work are compared. Within a group the rank is by joules per token
(decode for inference, train for training), lower first. The energy method of each row is shown
beside its number, so an estimate is never read as a measurement; ``method=`` filters to one kind.
"""

from __future__ import annotations

from greenbench.results import get_path


def _primary(doc: dict) -> tuple[str, float | None]:
    if get_path(doc, "workload.kind", None) == "training":
        return "train.j_per_token", get_path(doc, "metrics.train.j_per_token", None)
    return "decode.j_per_token", get_path(doc, "metrics.decode.j_per_token", None)


def build_rows(entries: list[dict], *, method: str | None = None, profile: str | None = None,
               include_partial: bool = False) -> list[dict]:
    """Rank verified entries.

    Args:
        entries: dicts with ``result`` (the result document), ``signer`` (did:key) and ``cid``.
        method: keep only rows whose ``energy.method`` is this (``counter``, ``estimate``, ``simulated``).
        profile: keep only this profile name.
        include_partial: keep results of interrupted runs (off by default).

    Returns:
        rows sorted by group then rank, each a flat JSON-ready dict.
    """
    rows = []
    for e in entries:
        doc = e["result"]
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
