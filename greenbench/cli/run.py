"""`greenbench run PROFILE` and `greenbench profiles`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import typer

from greenbench.errors import GreenbenchError


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("profiles")(profiles)


def _check_out_dir(out: Path) -> None:
    """Fail before the benchmark, not after it, when results cannot be written."""
    import os
    import tempfile

    if out.exists() and not out.is_dir():
        raise GreenbenchError(f"--out {out} exists and is not a directory", "give a directory for result files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GreenbenchError(
            f"--out {out} is not writable: {exc.strerror or exc}",
            "choose a directory you can write to, e.g. --out ./results",
        ) from None


def run(
    profile: str = typer.Argument(..., help="A built-in profile name (see `greenbench profiles`) or a path to a .toml file."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Backend: cpu, cuda (onnxruntime), torch (PyTorch), neuromorphic-sim or optical-sim (overrides the profile). Training: cpu, cuda or torch."),
    device: Optional[str] = typer.Option(None, "--device", help="torch backend and training: cpu or cuda (default: cuda when PyTorch sees a GPU)."),
    batch: Optional[List[int]] = typer.Option(None, "--batch", min=1, help="Batch size; repeat it (--batch 1 --batch 16) to sweep, one result per size."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Measured repeats (overrides the profile)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Unmeasured warmup repeats."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Tokens to generate per repeat."),
    region: Optional[str] = typer.Option(None, "--region", help="Grid region for carbon (FRA, US-CA, gcp:europe-west1, or g/kWh)."),
    meter: Optional[List[str]] = typer.Option(None, "--meter", help="Use this meter (repeatable); default: probe."),
    scope: Optional[str] = typer.Option(None, "--scope", help="devices (default): meter only the devices the backend uses; machine: every device."),
    idle: Optional[float] = typer.Option(None, "--idle", min=0.0, help="Seconds of idle-baseline measurement before the run (0 disables)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: physical cores)."),
    out: Path = typer.Option(Path("results"), "--out", help="Directory for the result document."),
    json_out: bool = typer.Option(False, "--json", help="Print the result document on stdout (nothing else on stdout); a batch sweep prints a JSON array of its results."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Errors and the result only: no warnings, status lines or progress bar."),
) -> None:
    """Benchmark a profile: joules per token for prefill and decode, TTFT, tokens/s, carbon.

    A batch sweep (--batch given more than once, or [generation] batch = [...]) measures each size in turn and
    writes one result per size."""
    from greenbench import profile as profile_mod
    from greenbench import results
    from greenbench.cli import render
    from greenbench.runner import run_profile

    render.QUIET = quiet
    prof = profile_mod.load(profile).with_overrides(
        backend=backend,
        repeats=repeats,
        warmup=warmup,
        max_new_tokens=max_new_tokens,
        region=region,
        meters=meter or None,
        idle_s=idle,
        threads=threads,
        scope=scope,
        device=device,
        batch=batch or None,
    )
    _check_out_dir(out)
    from greenbench.carbon import check_settings

    check_settings(prof.carbon.region, prof.carbon.pue)  # a bad region or PUE fails now, not after the benchmark

    from greenbench.backends import backend_for

    backend_obj = backend_for(prof)  # an unknown or unusable backend or device fails before anything else happens

    from greenbench.backends import device_scope

    scope_obj = device_scope(prof.run.backend, kind=prof.run.scope, backend=backend_obj)
    if prof.run.backend in profile_mod.SIMULATED_BACKENDS:
        if prof.run.meters:
            raise GreenbenchError(
                f"meters ({', '.join(prof.run.meters)}) do not apply to the simulated backend {prof.run.backend}: "
                "its energy comes from its cost model",
                "drop --meter (or [run] meters), or use --backend cpu/cuda to measure real hardware",
            )
        meters, warnings = [], []  # the simulated session brings its own (simulated) meters
    else:
        from greenbench.meters import select

        meters, warnings = select(list(prof.run.meters) if prof.run.meters else None, scope=scope_obj)
        for w in warnings:
            render.warn(w)

    points = prof.sweep()
    total = prof.run.repeats  # measured repeats; warmup shows in the bar's label
    docs: list[dict] = []

    def run_one(point) -> dict:
        # The progress bar appears with the first repeat, after the model is built and loaded, so status
        # lines and errors while preparing are not mixed into it.
        label = point.name if len(points) == 1 else f"{point.name} batch {point.generation.batch_size}"
        with contextlib.ExitStack() as stack:
            state = {"advance": None, "done": 0}

            def progress(desc: str, completed: int, _total: int) -> None:
                if render.QUIET:
                    return
                if state["advance"] is None:
                    state["advance"] = stack.enter_context(render.progress(label, total=total))
                state["advance"](completed - state["done"], description=f"{label}: {desc}")
                state["done"] = completed

            return run_profile(
                point, meters=meters, backend=backend_obj, warnings=warnings, progress=progress,
                status=render.info, scope=scope_obj,
            )

    from greenbench.sweep import run_sweep

    def stop(message: str) -> None:
        if docs:
            message += f" ({len(docs)} of {len(points)} batch sizes were measured and written)"
        render.warn(message)
        raise typer.Exit(130)

    try:
        for doc in run_sweep(prof, run_one):
            if doc.get("partial") and not doc["workload"].get("repeats_completed"):
                stop(f"{doc.get('partial_reason')}: no repeat was measured, so nothing was written")
            path = results.write(doc, out)
            docs.append(doc)
            if json_out and len(points) == 1:
                render.print_json_bytes(results.canonical_bytes(doc))
            elif not json_out:
                render.result_summary(doc)
            render.info(f"wrote {path}")
    except KeyboardInterrupt:
        stop("interrupted before any repeat" + (" of the next batch size" if docs else "") + " was measured; "
             "nothing " + ("more " if docs else "") + "written")
    if len(points) > 1 and json_out:  # a sweep: one JSON array of its results
        render.print_json_bytes(b"[" + b",".join(results.canonical_bytes(d) for d in docs) + b"]")
    elif len(points) > 1:
        render.sweep_summary(docs)
    if docs and docs[-1].get("partial"):
        render.warn(f"partial result: {docs[-1].get('partial_reason')}")
        raise typer.Exit(130)


def profiles(
    json_out: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the built-in profiles."""
    from greenbench import profile as profile_mod
    from greenbench.cli import render

    rows = []
    for name in profile_mod.builtin_names():
        p = profile_mod.load(name)
        m = p.model
        shape = (
            f"{m.layers}L h{m.hidden} {m.heads}/{m.kv_heads or m.heads} heads ffn{m.ffn} v{m.vocab} {m.dtype}"
            if m.kind
            else f"path={m.path}"
        )
        rows.append({"name": name, "description": p.description, "model": shape, "workload": p.run.workload,
                     "backend": p.run.backend, "path": p.source})
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(rows))
        return
    render.table(
        "Built-in profiles",
        [("name", "left", "keep"), ("workload", "left", "keep"), ("backend", "left", "keep"), "model", "description"],
        [[r["name"], r["workload"], r["backend"], r["model"], r["description"]] for r in rows],
        overflow="fold",
    )
