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
    backend: Optional[str] = typer.Option(None, "--backend", help="Backend: cpu, cuda, neuromorphic-sim or optical-sim (overrides the profile)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Measured repeats (overrides the profile)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Unmeasured warmup repeats."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Tokens to generate per repeat."),
    region: Optional[str] = typer.Option(None, "--region", help="Grid region for carbon (FRA, US-CA, gcp:europe-west1, or g/kWh)."),
    meter: Optional[List[str]] = typer.Option(None, "--meter", help="Use this meter (repeatable); default: probe."),
    scope: Optional[str] = typer.Option(None, "--scope", help="devices (default): meter only the devices the backend uses; machine: every device."),
    idle: Optional[float] = typer.Option(None, "--idle", min=0.0, help="Seconds of idle-baseline measurement before the run (0 disables)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: physical cores)."),
    out: Path = typer.Option(Path("results"), "--out", help="Directory for the result document."),
    json_out: bool = typer.Option(False, "--json", help="Print the result document on stdout (nothing else on stdout)."),
) -> None:
    """Benchmark a profile: joules per token for prefill and decode, TTFT, tokens/s, carbon."""
    from greenbench import profile as profile_mod
    from greenbench import results
    from greenbench.cli import render
    from greenbench.runner import run_profile

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
    )
    _check_out_dir(out)
    from greenbench.carbon import check_settings

    check_settings(prof.carbon.region, prof.carbon.pue)  # a bad region or PUE fails now, not after the benchmark

    backend_obj = None
    if prof.run.workload == "inference":  # an unknown or unusable backend fails before anything else happens
        from greenbench.backends import get_backend

        backend_obj = get_backend(prof.run.backend)

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

    total = prof.run.repeats  # measured repeats; warmup shows in the bar's label
    try:
        # The progress bar appears with the first repeat, after the model is built and loaded, so status
        # lines and errors while preparing are not mixed into it.
        with contextlib.ExitStack() as stack:
            state = {"advance": None, "done": 0}

            def progress(desc: str, completed: int, _total: int) -> None:
                if state["advance"] is None:
                    state["advance"] = stack.enter_context(render.progress(prof.name, total=total))
                state["advance"](completed - state["done"], description=f"{prof.name}: {desc}")
                state["done"] = completed

            doc = run_profile(
                prof, meters=meters, backend=backend_obj, warnings=warnings, progress=progress, status=render.info,
                scope=scope_obj,
            )
    except KeyboardInterrupt:
        render.warn("interrupted before any repeat was measured; nothing written")
        raise typer.Exit(130)
    if doc.get("partial") and not doc["workload"].get("repeats_completed"):
        render.warn(f"{doc.get('partial_reason')}: no repeat was measured, so nothing was written")
        raise typer.Exit(130)

    path = results.write(doc, out)
    if json_out:
        render.print_json_bytes(results.canonical_bytes(doc))
    else:
        render.result_summary(doc)
    render.info(f"wrote {path}")
    if doc.get("partial"):
        render.warn(f"partial result: {doc.get('partial_reason')}")
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
        ["name", "workload", "backend", "model", "description"],
        [[r["name"], r["workload"], r["backend"], r["model"], r["description"]] for r in rows],
    )
