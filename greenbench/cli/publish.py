"""`greenbench publish`: sign if needed, keep in the local store, push to a server or an IPFS node.

Stdout carries only CIDs, one line per published file in input order (or the JSON outcome with
``--json``); what happened (key created, signed, pushed where, files skipped or failed) goes to stderr.
A result signed here gets its envelope written beside it (``<stem>.dsse.json``), as ``greenbench sign``
writes it. Several files and directories are published in one call; a file that fails does not stop the
others, and the command then exits 1 (an envelope that does not verify) or 2 (bad input).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def publish_cmd(
    files: List[Path] = typer.Argument(
        ..., help="Result documents (signed here), DSSE envelopes, or directories of them (every *.json below)."
    ),
    to: Optional[str] = typer.Option(
        None, "--to", help="http://HOST:PORT (greenbench server) or kubo+http://HOST:5001 (Kubo RPC)."
    ),
    store: Optional[Path] = typer.Option(None, "--store", help="Local store directory."),
    token_file: Optional[Path] = typer.Option(
        None, "--token-file", help="Bearer token for the server (else GREENBENCH_SERVER_TOKEN)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Processes that sign and verify (default: one per CPU; used from 1,000 files on)."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Errors and the CIDs only."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Publish results: print each one's CID; with --to, also push them to a greenbench server or Kubo node."""
    from contextlib import ExitStack

    from greenbench import publish
    from greenbench.canonical import canonical_bytes
    from greenbench.cli import render
    from greenbench.errors import GreenbenchError, VerificationError
    from greenbench.server.app import read_token

    render.QUIET = quiet
    token = read_token(token_file) if to is not None else None
    single = len(files) == 1 and not files[0].is_dir()
    with ExitStack() as stack:
        progress = None
        if not single and not quiet and not as_json:
            state: dict = {}

            def progress(done: int, total: int) -> None:
                if "advance" not in state:
                    if total < 200:
                        state["advance"] = lambda n=1, description=None: None
                    else:
                        state["advance"] = stack.enter_context(render.progress("publishing", total))
                state["advance"](1)

        report = publish.publish_paths(files, to=to, store_dir=store, token=token, workers=workers, progress=progress)
    if single and report.failed:
        f = report.failed[0]
        if f.get("stored_locally"):
            render.info(f"stored in local store {report.store_dir} as {f['cid']}")
        raise (VerificationError if f["exit_code"] == 1 else GreenbenchError)(f["error"], f["hint"])
    if report.key_created:
        render.info("created a signing key (greenbench keys show)")
    for n in report.notes if single else ():
        render.warn(n["note"])
    if single:
        out = report.outcomes[0]
        if out.signed_now:
            render.info(f"signed {files[0]} as {out.signer}; envelope {_sidecar(files[0])}")
        else:
            render.info(f"verified envelope signed by {out.signer}")
        render.info(f"{'stored in' if out.stored_locally else 'already in'} local store {out.store_dir}")
        if out.destination == "kubo":
            render.info(f"imported and pinned on the Kubo node at {out.url}")
        elif out.destination == "server":
            render.info(f"published to the greenbench server at {out.url}")
        if as_json:
            render.print_json_bytes(canonical_bytes(out.to_json()))
        else:
            typer.echo(out.cid)
        return
    if as_json:
        render.print_json_bytes(canonical_bytes(report.to_json()))
    else:
        typer.echo("\n".join(o.cid for o in report.outcomes))
    outs = report.outcomes
    signed = sum(o.signed_now for o in outs)
    render.info(
        f"published {len(outs)} result(s): {sum(o.stored_locally for o in outs)} new in {report.store_dir}, "
        f"{signed} signed here ({report.envelopes_written} envelope(s) written beside them), "
        f"{len(outs) - signed} verified envelope(s)"
        + (f"; pushed to {to}" if to and outs else "")
    )
    for s in report.skipped:
        render.info(f"skipped {s['path']}: {s['reason']}")
    for n in report.notes:
        render.warn(n["note"])
    for f in report.failed:
        render.print_error(GreenbenchError(f"{f['path']}: {f['error']}", f.get("hint")))
    if report.failed:
        cls = VerificationError if report.exit_code == 1 else GreenbenchError
        raise cls(f"{len(report.failed)} of {len(report.failed) + len(outs)} file(s) were not published (listed above)",
                  "fix or remove them and publish again; the others are published")


def _sidecar(path: Path) -> Path:
    from greenbench.signing import envelope_path_for

    return envelope_path_for(path)


def register(app: typer.Typer) -> None:
    """Add ``publish`` to the root app."""
    app.command("publish")(publish_cmd)
