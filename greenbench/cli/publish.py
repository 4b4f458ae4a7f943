"""`greenbench publish`: sign if needed, keep in the local store, push to a server or an IPFS node.

Stdout carries only the CID (or the JSON outcome with ``--json``); what happened (key created,
signed, pushed where) goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def publish_cmd(
    file: Path = typer.Argument(..., help="A result document (signed first) or a DSSE envelope."),
    to: Optional[str] = typer.Option(
        None, "--to", help="http://HOST:PORT (greenbench server) or kubo+http://HOST:5001 (Kubo RPC)."
    ),
    store: Optional[Path] = typer.Option(None, "--store", help="Local store directory."),
    token_file: Optional[Path] = typer.Option(
        None, "--token-file", help="Bearer token for the server (else GREENBENCH_SERVER_TOKEN)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Publish a result: print its CID; with --to, also push it to a greenbench server or Kubo node."""
    from greenbench import publish
    from greenbench.canonical import canonical_bytes
    from greenbench.cli import render
    from greenbench.server.app import read_token

    token = read_token(token_file) if to is not None else None
    out = publish.publish_file(file, to=to, store_dir=store, token=token)
    if out.key_created:
        render.info(f"created a signing key for {out.signer} (greenbench keys show)")
    if out.signed_now:
        render.info(f"signed {file} as {out.signer}")
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


def register(app: typer.Typer) -> None:
    """Add ``publish`` to the root app."""
    app.command("publish")(publish_cmd)
