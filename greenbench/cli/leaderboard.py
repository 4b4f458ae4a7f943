"""`greenbench leaderboard`: rank verified results from the local store or a greenbench server."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard)


def _short(text: str | None, prefix: str = "") -> str:
    if not text:
        return "-"
    body = text[len(prefix):] if prefix and text.startswith(prefix) else text
    return body if len(body) <= 12 else f"{body[:5]}…{body[-4:]}"


def leaderboard(
    store: Optional[str] = typer.Option(None, "--store", help="Store directory (default: GREENBENCH_STORE or the user data dir)."),
    from_url: Optional[str] = typer.Option(None, "--from", help="Read from a greenbench server instead (every block and signature is verified here)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Only this profile."),
    method: Optional[str] = typer.Option(None, "--method", help="Only this energy method: counter, estimate or simulated."),
    trust: Optional[Path] = typer.Option(None, "--trust", help="File of did:keys; only results they signed count."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the leaderboard as a self-contained HTML page."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Rank verified results by joules per token, within each profile configuration."""
    from greenbench import leaderboard as lb
    from greenbench.cli import render
    from greenbench.errors import GreenbenchError

    if method and method not in ("counter", "estimate", "simulated"):
        raise GreenbenchError(f"--method {method!r} is not an energy method", "use counter, estimate or simulated")
    trusted = None
    if trust:
        from greenbench.signing import read_trust_file

        trusted = read_trust_file(trust)
    from greenbench.publish import load_verified_results, verify_entries

    if from_url:
        from greenbench.store.remote import ServerClient

        client = ServerClient(from_url)  # blocks are checked against their CIDs here, signatures below
        entries, skipped = verify_entries(client.results(), client.get_block, trusted)
    else:
        from greenbench.store.local import open_store

        entries, skipped = load_verified_results(open_store(store), trusted)
    rows = lb.build_rows(entries, method=method, profile=profile, skipped=skipped)
    if html:
        from greenbench.fsutil import atomic_write_bytes

        atomic_write_bytes(html, lb.render_html(rows).encode("utf-8"))
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes({"rows": rows, "skipped": skipped}))
        return
    if not rows:
        render.info("no verified results yet: `greenbench publish RESULT` adds one")
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    for group, grows in groups.items():
        render.table(
            group,
            [("#", "right"), "backend", "hardware", ("J/token", "right"), "method", ("tok/s", "right"),
             ("gCO2e/1k", "right"), "signer"],
            [[r["rank"], r["backend"], r["hardware"], render.fmt_si(r["j_per_token"], "J"), r["method"],
              "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:.0f}",
              "-" if r["g_co2e_per_1k_tokens"] is None else f"{r['g_co2e_per_1k_tokens']:.3g}",
              _short(r["signer"], "did:key:")] for r in grows],
            caption="signers shortened; --json gives them in full, with each result's CID",
        )
    for s in skipped:
        render.warn(f"skipped {s['cid']}: {s['reason']}")
    if html:
        render.info(f"wrote {html}")
