"""`greenbench leaderboard`: rank signed results of the same work, from the local store or a greenbench server.

Stdout: the tables (or ``--json``, ``--csv``, ``--markdown``); ``--html DIR`` also writes the web pages
statically. Trust: ``--trust FILE``, else the config file's ``trust``, else the trust file of
``greenbench keys trust``, else the local signing key alone (:mod:`greenbench.trust`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard)


def leaderboard(
    store: Optional[str] = typer.Option(None, "--store", help="Store directory (default: GREENBENCH_STORE or the user data dir)."),
    from_url: Optional[str] = typer.Option(None, "--from", help="Read from a greenbench server instead (every block and signature is verified here)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Only this profile."),
    method: Optional[str] = typer.Option(None, "--method", help="Only this energy method (lane): counter, estimate or simulated."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Only this backend."),
    group: Optional[str] = typer.Option(None, "--group", help="Only this work (a workload.digest, sha256:…)."),
    trust: Optional[Path] = typer.Option(None, "--trust", help="File of trusted did:keys (default: config `trust`, the keys trust file, else the local key)."),
    trusted_only: bool = typer.Option(False, "--trusted-only", help="Leave out results signed only by unknown keys."),
    include_partial: bool = typer.Option(False, "--include-partial", help="List results of interrupted runs too (never ranked)."),
    top: int = typer.Option(10, "--top", min=0, help="Rows per work group and lane in the terminal tables (0: all)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write the web pages into this directory (index.html, one page per result)."),
    json_out: bool = typer.Option(False, "--json", help="Print {rows, untrusted, skipped} as JSON."),
    csv_out: bool = typer.Option(False, "--csv", help="Print the rows as CSV."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the leaderboard as Markdown."),
) -> None:
    """Rank signed results by joules per token within the same work and energy method."""
    from greenbench import leaderboard as lb
    from greenbench import trust as trust_policy
    from greenbench.cli import render
    from greenbench.errors import GreenbenchError

    if method and method not in lb.fields.LANES:
        raise GreenbenchError(f"--method {method!r} is not an energy method", "use counter, estimate or simulated")
    if sum((json_out, csv_out, markdown)) > 1:
        raise GreenbenchError("--json, --csv and --markdown each print the whole leaderboard", "choose one")
    policy = trust_policy.resolve(trust)
    options = dict(trusted_only=trusted_only, include_partial=include_partial,
                   filters={"profile": profile, "method": method, "backend": backend, "group": group})
    source = None
    if from_url:
        from greenbench.publish import remote_records
        from greenbench.store.remote import ServerClient

        client = ServerClient(from_url, flag="--from")  # blocks are checked against their CIDs here, signatures too
        records, skipped = remote_records(client.results(), client.get_block)
        board = lb.build(records, policy, skipped=skipped, **options)
        source = client.get_block
    else:
        from greenbench.publish import refresh_index
        from greenbench.store.local import open_store

        st = open_store(store)
        refresh_index(st)
        if json_out and not html:  # straight from the index's query, without building the rows here
            import sys

            from greenbench.leaderboard.query import board_json

            board_json(st, policy, write=sys.stdout.buffer.write, **options)
            sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
            return
        board = lb.from_store(st, policy, **options)
        source = st.get_block
    if html:
        from greenbench.leaderboard.html import write_site

        pages = write_site(board, html, source, trust_source=policy.source)
        render.info(f"wrote {pages} page(s) into {html} (open {html / 'index.html'})")
    if json_out:
        import sys

        sys.stdout.buffer.write(board.json_bytes() + b"\n")
        sys.stdout.flush()
        return
    if csv_out or markdown:
        from greenbench.leaderboard.export import to_csv, to_markdown

        typer.echo(to_csv(board) if csv_out else to_markdown(board), nl=False)
        return
    _terminal(board, policy, top)


def _terminal(board, policy, top: int) -> None:
    from greenbench.cli import render
    from greenbench.leaderboard import LANE_LABEL
    from greenbench.leaderboard.units import si

    render.info(f"trusted signers: {policy.source}")
    if not board.rows:
        render.info("no results from trusted signers yet: `greenbench publish RESULT` adds one"
                    + (f"; {len(board.untrusted)} signed by unknown keys are listed below" if board.untrusted else ""))
    letters: dict[str, str] = {}

    def letter(did: str) -> str:
        if did not in letters:
            n = len(letters)
            letters[did] = (chr(ord("A") + n % 26) + (str(n // 26) if n >= 26 else ""))
        return letters[did]

    def table(title: str, rows: list[dict], ranked: bool) -> None:
        shown = rows if not top else rows[:top]
        cols = [("#", "right", "keep"), ("profile", "left", "keep"), ("backend", "left", "keep"), "hardware",
                ("J/token", "right", "keep"), ("tokens/s", "right", "keep"), ("TTFT", "right"),
                ("g CO2e/1k tok", "right"), ("region", "left", "keep"), "date", ("flags", "left", "keep"),
                ("signer", "left", "keep")]
        body = []
        for r in shown:
            flags = " ".join(f for f, on in (("busy", r["flagged"]), ("partial", r["partial"]),
                                             ("below-res", r["below_resolution"])) if on) or "-"
            body.append([r["rank"] if ranked and r["rank"] is not None else "-", r["profile"] or "-", r["backend"] or "-",
                         r["hardware"] or "-", "below resolution" if r["below_resolution"] else si(r["j_per_token"], "J"),
                         si(r["tokens_per_s"], "tok/s").replace(" tok/s", ""), si(r["ttft_s"], "s"),
                         si(r["g_co2e_per_1k_tokens"], "g"), r["region"] or "-", (r["created"] or "-")[:10], flags,
                         " ".join(letter(s) for s in r["signers"])])
        more = len(rows) - len(shown)
        render.table(title, cols, body, overflow="fold",
                     caption=(f"{more} more: --top 0 shows all, --json gives every field" if more else None))

    for group, rows in board.groups().items():
        first = rows[0]
        render.console().print("")
        render.console().print(f"work {group} ({first['kind'] or '?'}, ranked by {first['metric']}, lower is better)",
                               soft_wrap=True, markup=False, highlight=False)
        for lane in ("counter", "estimate", "simulated"):
            mine = [r for r in rows if r["lane"] == lane]
            if mine:
                table(LANE_LABEL[lane], mine, True)
    if board.untrusted:
        render.console().print("")
        table("Signed by unknown keys (not ranked; `greenbench keys trust add DID` trusts one)", board.untrusted, False)
    if letters:
        render.console().print("")
        for did, code in letters.items():
            render.console().print(f"signer {code}: {did}", soft_wrap=True, markup=False, highlight=False)
        render.console().print("CIDs, digests and every metric: --json or --csv; one result: greenbench show CID",
                               soft_wrap=True, markup=False, highlight=False)
    for s in board.skipped:
        render.warn(f"skipped {s['cid']}: {s['reason']}")
