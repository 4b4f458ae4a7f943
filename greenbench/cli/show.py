"""`greenbench show RESULT|CID` and `greenbench compare A B [C...]`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("show")(show)
    app.command("compare")(compare)


def _load(ref: str, store: Optional[Path]) -> tuple[dict, list[str], str]:
    """A result from a file (bare or signed) or a CID in the store: (document, signers, where from)."""
    import json

    from greenbench.errors import GreenbenchError
    from greenbench.results import load_any, loads, parse_json

    p = Path(ref)
    if p.is_dir():
        raise GreenbenchError(f"{p} is a directory", f"give result files, e.g. {p}/*.json")
    if p.exists():
        from greenbench.results import _read

        raw = parse_json(_read(p)[1], str(p))
        signers = []
        if isinstance(raw, dict) and "payloadType" in raw:
            from greenbench.signing import verify_envelope

            signers = list(verify_envelope(raw).signers)
        return load_any(p), signers, str(p)
    from greenbench.store.cid import CID

    try:
        cid = CID.decode(ref)
    except Exception:
        raise GreenbenchError(f"{ref!r} is neither a file nor a CID",
                              "give a result file, a signed envelope, or the CID `greenbench publish` printed") from None
    from greenbench.fsutil import default_store_dir
    from greenbench.store.local import LocalStore

    data = LocalStore(default_store_dir(store)).get_block(cid)
    doc = parse_json(data, f"block {ref}")
    if isinstance(doc, dict) and "payloadType" in doc:
        from greenbench.canonical import canonical_bytes
        from greenbench.signing import verify_envelope

        v = verify_envelope(doc)
        return loads(canonical_bytes(v.result), source=f"block {ref}"), list(v.signers), f"{ref} (store)"
    return loads(json.dumps(doc), source=f"block {ref}"), [], f"{ref} (store)"


def show(
    result: List[str] = typer.Argument(..., help="A result file, a signed envelope, or a CID in the store (several: "
                                       "each in turn, and the J/token-against-tokens/s curve of a batch sweep)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store directory (for a CID)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result document(s) as JSON."),
) -> None:
    """Render results: phases, energy by meter and domain, windows, training rows, roofline, carbon, provenance."""
    from greenbench.canonical import canonical_bytes
    from greenbench.cli import render

    loaded = [_load(r, store) for r in result]
    if json_out:
        docs = [canonical_bytes(d) for d, _, _ in loaded]
        render.print_json_bytes(docs[0] if len(docs) == 1 else b"[" + b",".join(docs) + b"]")
        return
    for doc, signers, where in loaded:
        try:
            render.result_details(doc, source=where, signers=signers)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            from greenbench.errors import GreenbenchError

            raise GreenbenchError(
                f"{where}: not a result this greenbench can render (a field is missing or of another type: {exc!r})",
                "`greenbench show --json` prints it as it is",
            ) from None
    sweeps: dict[str, list[dict]] = {}
    for doc, _, _ in loaded:
        digest = ((doc.get("workload") or {}).get("sweep") or {}).get("digest")
        if digest:
            sweeps.setdefault(digest, []).append(doc)
    for docs in sweeps.values():
        if len(docs) > 1:
            render.sweep_summary(sorted(docs, key=lambda d: d["workload"].get("batch_size") or 0))


def compare(
    results: List[str] = typer.Argument(..., help="Two or more results (files, envelopes or CIDs); the first is the reference."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store directory (for CIDs)."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the comparison as a Markdown table."),
    csv_out: bool = typer.Option(False, "--csv", help="Print the comparison as CSV."),
) -> None:
    """Ratios between results with their uncertainty, per metric (hyperfine style). No verdict: that is `gate`."""
    from greenbench import compare as lib
    from greenbench.cli import render
    from greenbench.errors import GreenbenchError

    if len(results) < 2:
        raise GreenbenchError("compare needs at least two results", "greenbench compare A.json B.json")
    named = []
    for i, ref in enumerate(results):
        doc, _, where = _load(ref, store)
        label = Path(ref).stem if Path(ref).exists() else ref[:16]
        label = render.printable(label, newlines=False)  # it reaches the terminal, Markdown and CSV
        named.append((label if label not in [n for n, _ in named] else f"{label}#{i + 1}", doc))
    report = lib.compare_results(named)
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(report))
    elif markdown:
        typer.echo(lib.to_markdown(report), nl=False)
    elif csv_out:
        typer.echo(lib.to_csv(report), nl=False)
    else:
        render.comparison(report)
