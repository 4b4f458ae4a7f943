"""`greenbench store`: the local content-addressed store, CAR files and Filecoin piece CIDs.

Stdout carries only what scripts capture (a CID, a block's bytes, JSON with ``--json``); counts and
paths go to stderr. Every command takes ``--store DIR`` (default: ``GREENBENCH_STORE``, else the user
data dir). A block whose bytes do not match its CID is a verdict (exit 1); malformed input exits 2.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer


store_app = typer.Typer(help="The local content-addressed store: blocks, CAR files, piece CIDs.", no_args_is_help=True)
car_app = typer.Typer(help="CAR (Content Addressable aRchive) files: inspect, export, import.", no_args_is_help=True)
store_app.add_typer(car_app, name="car")

#: `store put` shows a progress bar for inputs of at least this many bytes (~0.3 s and more).
PROGRESS_MIN_BYTES = 256 << 20

_STORE_HELP = "Store directory (default: $GREENBENCH_STORE, else the user data dir)."


def _store_option(hidden: bool = False):
    return typer.Option(None, "--store", metavar="DIR", help=_STORE_HELP, hidden=hidden)


@store_app.command("put")
def put(
    file: str = typer.Argument(..., metavar="FILE", help="File to store ('-' reads stdin)."),
    store: Optional[str] = _store_option(),
) -> None:
    """Store FILE's bytes and print the CIDv1: one raw block up to 1 MiB, else the root of 1 MiB chunks."""
    from contextlib import ExitStack

    from greenbench.store.local import open_store

    source = sys.stdin.buffer if file == "-" else file
    with ExitStack() as stack:
        bar: dict = {}

        def progress(done: int, total: int | None) -> None:
            # A bar (on stderr) only for work that takes a while: files of PROGRESS_MIN_BYTES and more.
            if "advance" not in bar:
                if (done if total is None else total) < PROGRESS_MIN_BYTES:
                    return
                from greenbench.cli import render

                label = "stdin" if file == "-" else os.path.basename(file)
                bar["advance"] = stack.enter_context(
                    render.progress(f"storing {label} (MiB)", None if total is None else -(-total >> 20))
                )
                bar["mib"] = 0
            mib = -(-done >> 20)
            bar["advance"](mib - bar["mib"])
            bar["mib"] = mib

        cid = open_store(store).put_file(source, progress)
    typer.echo(str(cid))


@store_app.command("get")
def get(
    cid: str = typer.Argument(..., metavar="CID", help="The CID to read."),
    store: Optional[str] = _store_option(),
    block: bool = typer.Option(False, "--block", help="Write the block itself, even for a chunked-file root."),
) -> None:
    """Write the bytes addressed by CID to stdout, checked against the CID (a chunked file is reassembled)."""
    from greenbench.store.local import open_store

    st = open_store(store)
    out = sys.stdout.buffer
    if block:
        out.write(st.get_block(cid))
    else:
        for chunk in st.cat(cid, precheck=True):
            out.write(chunk)
    out.flush()


@car_app.command("inspect")
def car_inspect(
    file: str = typer.Argument(..., metavar="FILE", help="CARv1 or CARv2 file."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    store: Optional[str] = _store_option(hidden=True),
) -> None:
    """Version, roots, block count, counts by codec and multihash, and whether every block verified.

    Exits 1 when a block does not match its CID.
    """
    from greenbench.cli import render
    from greenbench.store.car import inspect_car

    summary = inspect_car(file)
    doc = summary.to_json()
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(doc))
    else:
        rows = [
            ("version", doc["version"]),
            ("roots", "\n".join(doc["roots"]) or "(none)"),
            ("blocks", doc["blocks"]),
            ("block bytes", doc["block_bytes"]),
            ("codecs", ", ".join(f"{k}: {v}" for k, v in doc["codecs"].items()) or "-"),
            ("multihashes", ", ".join(f"{k}: {v}" for k, v in doc["multihashes"].items()) or "-"),
            ("verified", "yes, every block" if doc["verified"] else "NO"),
        ]
        if doc["failed"]:
            rows.append(("failed", "\n".join(doc["failed"])))
        if doc["unverifiable"]:
            rows.append(("unverifiable", "\n".join(doc["unverifiable"])))
        render.table(f"CAR {file}", ["field", "value"], rows)
    if summary.unverifiable and not summary.failed:
        render.warn(f"{len(summary.unverifiable)} block(s) use hash functions greenbench cannot check")
    if summary.failed:
        from greenbench.errors import VerificationError

        raise VerificationError(
            f"{file}: {len(summary.failed)} block(s) do not match their CID: {', '.join(doc['failed'][:5])}",
            "the CAR is corrupted or was tampered with; fetch it again from a source you trust",
        )


@car_app.command("export")
def car_export(
    cids: List[str] = typer.Argument(..., metavar="CID...", help="Root CIDs."),
    out: str = typer.Option(..., "-o", "--out", metavar="OUT", help="CAR file to write (atomically)."),
    store: Optional[str] = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print {out, roots, blocks} as JSON."),
) -> None:
    """Write a CARv1 with the roots and every block reachable from them (dag-json, dag-cbor, dag-pb links)."""
    from greenbench.cli import render
    from greenbench.store.cid import CID
    from greenbench.store.local import open_store

    roots = [CID.decode(c) for c in cids]
    count = open_store(store).export_car(roots, out)
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes({"blocks": count, "out": out, "roots": [str(r) for r in roots]}))
    else:
        render.info(f"wrote {count} block(s) to {out}")


@car_app.command("import")
def car_import(
    file: str = typer.Argument(..., metavar="FILE", help="CARv1 or CARv2 file."),
    store: Optional[str] = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print {roots, blocks, new_blocks} as JSON."),
) -> None:
    """Import every block of a CAR after checking each against its CID (all or nothing); print the roots."""
    from greenbench.cli import render
    from greenbench.store.local import open_store

    st = open_store(store)
    result = st.import_car(file)
    roots = [str(r) for r in result]
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(
            canonical_bytes({"blocks": result.blocks, "new_blocks": result.new_blocks, "roots": roots})
        )
        return
    for root in roots:
        typer.echo(root)
    render.info(f"imported {result.blocks} block(s) ({result.new_blocks} new) into {st.root}")


@store_app.command("commp")
def commp_cmd(
    file: str = typer.Argument(..., metavar="FILE", help="Payload file ('-' reads stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print {piece_cid, padded_piece_size} as JSON."),
    store: Optional[str] = _store_option(hidden=True),
) -> None:
    """Print the Filecoin piece CID (CommP, baga6ea4seaq...) of FILE's bytes."""
    from greenbench.cli import render
    from greenbench.store.commp import commp

    cid, padded = commp(sys.stdin.buffer if file == "-" else file)
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes({"padded_piece_size": padded, "piece_cid": str(cid)}))
    else:
        typer.echo(str(cid))
        render.info(f"padded piece size: {padded} bytes")


def register(app: typer.Typer) -> None:
    """Add the ``store`` command group to the root app."""
    app.add_typer(store_app, name="store")
