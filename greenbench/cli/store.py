"""`greenbench store`: the local content-addressed store, CAR files, pins, repairs and Filecoin piece CIDs.

Stdout carries only what scripts capture (a CID, a block's bytes, a report table, JSON with ``--json``);
counts and paths go to stderr. Every command takes ``--store DIR`` (default: ``GREENBENCH_STORE``, else
the user data dir). A block whose bytes do not match its CID is a verdict (exit 1); malformed input
exits 2.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer


store_app = typer.Typer(
    help="The local content-addressed store: files, blocks, CAR files, pins, repairs, piece CIDs.", no_args_is_help=True
)
car_app = typer.Typer(help="CAR (Content Addressable aRchive) files: inspect, export, import.", no_args_is_help=True)
pin_app = typer.Typer(help="Pins: CIDs that `store gc --unpinned` keeps, with everything they link to.", no_args_is_help=True)
store_app.add_typer(car_app, name="car")
store_app.add_typer(pin_app, name="pin")

#: `store put` shows a progress bar for inputs of at least this many bytes (~0.3 s and more).
PROGRESS_MIN_BYTES = 256 << 20
#: `store verify` shows a progress bar for stores of at least this many block copies.
VERIFY_PROGRESS_MIN = 2000

_STORE_HELP = "Store directory (default: $GREENBENCH_STORE, else the user data dir)."


def _store_option(hidden: bool = False):
    return typer.Option(None, "--store", metavar="DIR", help=_STORE_HELP, hidden=hidden)


@store_app.command("put")
def put(
    file: str = typer.Argument(..., metavar="FILE", help="File to store ('-' reads stdin)."),
    store: Optional[str] = _store_option(),
    no_pin: bool = typer.Option(False, "--no-pin", help="Do not pin the file (`store gc --unpinned` may remove it)."),
) -> None:
    """Store FILE and print its CIDv1, the one `ipfs add --cid-version=1` gives.

    Up to 256 KiB: one raw block. Larger: a UnixFS file (256 KiB raw leaves, at most 174 links per node),
    which IPFS tools read as they read their own. The file is pinned, as `ipfs add` pins.
    """
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

        cid = open_store(store).put_file(source, progress, pin=not no_pin)
    typer.echo(str(cid))


@store_app.command("get")
def get(
    cid: str = typer.Argument(..., metavar="CID", help="The CID to read."),
    store: Optional[str] = _store_option(),
    block: bool = typer.Option(False, "--block", help="Write the root block itself, not the file it roots."),
) -> None:
    """Write the bytes addressed by CID to stdout, every block checked against its CID first.

    A UnixFS file (from `store put`, `ipfs add`, ipfs-car, ...) is written whole; exits 1 when any of
    its blocks is damaged, before anything is written.
    """
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
    max_bytes: Optional[int] = typer.Option(
        None, "--max-bytes", min=0, help="Import nothing if the CAR's new blocks add up to more than this."
    ),
    no_pin: bool = typer.Option(False, "--no-pin", help="Do not pin the CAR's roots."),
) -> None:
    """Import every block of a CAR after checking each against its CID (all or nothing); print the roots.

    The roots are pinned (as Kubo's `dag import` pins them), so `store gc --unpinned` keeps them.
    """
    from greenbench.cli import render
    from greenbench.store.local import open_store

    st = open_store(store)
    result = st.import_car(file, max_bytes=max_bytes, pin_roots=not no_pin)
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


@store_app.command("verify")
def verify_cmd(
    store: Optional[str] = _store_option(),
    repair: bool = typer.Option(False, "--repair", help="Drop every bad copy, so storing the data again heals it."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-hash every block file and packed block, and verify every indexed result's signature again;
    exit 1 if anything is bad.

    With --repair the bad copies are dropped: the blocks then read as missing, and `store put`, `store
    car import` or a server upload of the same data writes good copies. A result whose envelope no longer
    verifies is marked in the index, and the leaderboard lists it as skipped until it verifies again.
    """
    from greenbench.cli import render
    from greenbench.errors import VerificationError
    from greenbench.publish import verify_results
    from greenbench.store.local import open_store

    from contextlib import ExitStack

    st = open_store(store)

    def progress_bar(stack, what: str):
        state = {"done": 0}

        def progress(done: int, total: int) -> None:
            if "advance" not in state:
                if total < VERIFY_PROGRESS_MIN:
                    return
                state["advance"] = stack.enter_context(render.progress(what, total))
            state["advance"](done - state["done"])
            state["done"] = done

        return progress

    with ExitStack() as stack:
        report = st.verify(repair=repair, progress=progress_bar(stack, "verifying blocks"))
    with ExitStack() as stack:
        results_bad = verify_results(st, progress=progress_bar(stack, "verifying result signatures"))
    results_checked = len(st.index.result_verdicts())
    doc = report.to_json()
    doc["results_checked"] = results_checked
    doc["results_bad"] = results_bad
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(doc))
    else:
        rows = [
            ("block files", report.block_files),
            ("packed blocks", report.packed_blocks),
            ("bytes re-hashed", report.bytes),
            ("bad copies", len(report.bad)),
            ("unverifiable (unknown hash function)", report.unverifiable),
            ("result signatures verified again", results_checked),
            ("results that do not verify", len(results_bad)),
        ]
        if repair:
            rows.append(("bad copies dropped", report.repaired))
        render.table(f"store {st.root}", ["check", "count"], rows)
        if report.bad:
            render.table("bad copies", ["CID", "where", "problem"], [(b["cid"], b["where"], b["problem"]) for b in report.bad])
        if results_bad:
            render.table("results that do not verify (left off the leaderboard)",
                         [("CID", "left", "keep"), "problem"], [(b["cid"], b["reason"]) for b in results_bad],
                         overflow="fold")
    if results_bad and not report.bad:
        raise VerificationError(f"{len(results_bad)} indexed result(s) in {st.root} do not verify",
                                "store each again from a good copy (greenbench publish FILE)")
    if report.bad:
        raise VerificationError(
            f"{len(report.bad)} damaged block copie(s) in {st.root}" + (f"; {report.repaired} dropped" if repair else ""),
            "store the data again from a good copy (store put / store car import)"
            if repair
            else "run `greenbench store verify --repair`, then store the data again from a good copy",
        )


@store_app.command("gc")
def gc_cmd(
    store: Optional[str] = _store_option(),
    unpinned: bool = typer.Option(
        False, "--unpinned", help="Also remove every block that no pin and no indexed result reaches."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Remove what interrupted writes left (tmp/ files no live writer holds, packs no index row names).

    A complete pack that lost its index rows is indexed again instead. Writers wait while gc runs.
    """
    from greenbench.cli import render
    from greenbench.store.local import open_store

    st = open_store(store)
    report = st.gc(unpinned=unpinned)
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(report.to_json()))
        return
    rows = [
        ("temporary files removed", f"{report.tmp_files} ({report.tmp_bytes} bytes)"),
        ("packs removed", f"{report.packs_removed} ({report.pack_bytes} bytes, compacted ones included)"),
        ("packs indexed again", report.packs_reindexed),
    ]
    if unpinned:
        rows += [
            ("unreferenced blocks removed", f"{report.blocks_removed} ({report.block_bytes} bytes)"),
            ("packs compacted", report.packs_compacted),
            ("blocks kept (reachable from pins and results)", report.live_blocks),
        ]
    render.table(f"store gc {st.root}", ["what", "count"], rows)
    for cid in report.missing[:20]:
        render.warn(f"referenced but not stored (kept nothing to remove): {cid}")


@store_app.command("reindex")
def reindex_cmd(
    store: Optional[str] = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Rebuild the index from what is stored: packed blocks from the packs, results from the stored
    envelopes whose signatures verify (a lost index.sqlite hides no result afterwards)."""
    from greenbench.cli import render
    from greenbench.publish import reindex_store
    from greenbench.store.local import open_store

    st = open_store(store)
    report = reindex_store(st)
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(report.to_json()))
        return
    render.table(
        f"store reindex {st.root}",
        ["what", "count"],
        [("packed block rows added", report.pack_rows), ("results indexed", report.results), ("skipped", len(report.skipped))],
    )
    for item in report.skipped[:20]:
        render.warn(f"skipped {item['cid']}: {item['reason']}")


@pin_app.command("add")
def pin_add(
    cids: List[str] = typer.Argument(..., metavar="CID...", help="CIDs to pin."),
    direct: bool = typer.Option(False, "--direct", help="Pin only the block itself, not what it links to."),
    store: Optional[str] = _store_option(),
) -> None:
    """Pin CIDs (recursively by default); every block a pin covers must be in the store."""
    from greenbench.store.local import open_store

    for cid in open_store(store).pin(cids, recursive=not direct):
        typer.echo(str(cid))


@pin_app.command("rm")
def pin_rm(
    cids: List[str] = typer.Argument(..., metavar="CID...", help="CIDs to unpin."),
    store: Optional[str] = _store_option(),
) -> None:
    """Remove pins (the blocks stay until `store gc --unpinned`)."""
    from greenbench.errors import StoreError
    from greenbench.store.local import open_store

    st = open_store(store)
    missing = [c for c in cids if not st.unpin(c)]
    if missing:
        raise StoreError(f"not pinned: {', '.join(missing)}", "list the pins with `greenbench store pin ls`")


@pin_app.command("ls")
def pin_ls(
    store: Optional[str] = _store_option(),
    as_json: bool = typer.Option(False, "--json", help="Print [{cid, type}] as JSON."),
) -> None:
    """List the pins: one CID and its type (recursive or direct) per line."""
    from greenbench.cli import render
    from greenbench.store.local import open_store

    pins = [{"cid": str(cid), "type": "recursive" if rec else "direct"} for cid, rec in open_store(store).pins()]
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(pins))
        return
    for pin in pins:
        typer.echo(f"{pin['cid']} {pin['type']}")


def register(app: typer.Typer) -> None:
    """Add the ``store`` command group to the root app."""
    app.add_typer(store_app, name="store")
