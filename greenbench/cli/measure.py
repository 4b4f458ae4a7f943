"""`greenbench measure`: run any command and report its energy, wall time, CO2e and J/token."""

from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Register ``greenbench measure`` on the root app."""
    app.command("measure", context_settings={"allow_interspersed_args": False})(measure)


def measure(
    cmd: List[str] = typer.Argument(..., metavar="-- CMD ARGS", help="The command to run (no shell) and its arguments, after --.", show_default=False),
    tokens: Optional[int] = typer.Option(None, "--tokens", "-n", min=0, help="Tokens the command produces: adds J/token."),
    region: Optional[str] = typer.Option(None, "--region", "-r", help="Grid region for CO2e (e.g. FRA, US-CA, WORLD); see `greenbench carbon --list-regions`."),
    meter: Optional[List[str]] = typer.Option(
        None, "--meter", "-m", help="Use exactly this meter (repeatable, or comma-separated): rapl, nvml, amd, estimate. "
        "Default: every usable hardware meter, else estimates (with a warning)."
    ),
    idle_s: float = typer.Option(0.0, "--idle", min=0.0, help="Seconds of idle baseline before the command (0: none); adds marginal energy."),
    runs: int = typer.Option(1, "--runs", min=1, help="Measure the command this many times and report the median and spread."),
    warmup: int = typer.Option(0, "--warmup", min=0, help="Unmeasured runs before the measured ones (with --runs)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Errors and the result only (no warnings or status lines)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print only the result JSON on stdout. The command's own stdout is sent to stderr so it cannot corrupt the JSON."
    ),
    powercap_root: Optional[str] = typer.Option(None, "--powercap-root", hidden=True, help="powercap sysfs root (tests)."),
) -> None:
    """Run CMD and measure it: energy per meter and domain, wall time, CO2e, and J/token with --tokens.

    The command's stdin/stdout/stderr are untouched (with --json its stdout goes to stderr).
    greenbench exits with the command's own exit code. Ctrl-C is passed to the command; what was
    measured until it stopped is still reported, marked partial.

    Example: greenbench measure --tokens 256 -- python generate.py --n 256
    """
    import sys

    from greenbench.cli import render
    from greenbench.measurement import run_command

    render.QUIET = quiet
    child_stdout = None
    if json_out:
        try:
            child_stdout = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            child_stdout = 2
    if runs > 1 or warmup:
        if idle_s:
            from greenbench.errors import GreenbenchError

            raise GreenbenchError("--idle is not supported with --runs or --warmup",
                                  "measure the idle baseline in a single run: drop --runs, or drop --idle")
        _repeated(cmd, tokens, meter, region, child_stdout, powercap_root, runs, warmup, json_out, render)
        return
    result = run_command(
        cmd, tokens=tokens, meters=meter or None, region=region, idle_s=idle_s, child_stdout=child_stdout,
        sysfs_root=powercap_root,
    )

    if json_out:
        import json

        render.print_json_bytes(json.dumps(result, indent=2, sort_keys=True).encode("utf-8"))
        for w in result.get("warnings", []):  # also in the JSON; stderr so a human sees them too
            render.warn(w)
    else:
        _render(result, render)
    code = result["exit_code"]
    if code:
        raise typer.Exit(code)


def _render(result: dict, render) -> None:
    e = result["energy"]
    rows = [
        [r["name"], r["domain"], r["method"], render.fmt_si(r["joules"], "J"), "yes" if r["in_total"] else "no (nested)"]
        for r in e["meters"]
    ]
    render.table(
        "greenbench measure: " + " ".join(result["command"]),
        ["meter", "domain", "method", ("energy", "right"), "in total"],
        rows,
    )
    out = typer.echo
    out(f"wall time: {result['duration_s']:.3f} s    exit code: {result['exit_code']}")
    out(f"total energy: {render.fmt_si(e['total_j'], 'J')} (method: {e['method']})")
    if e.get("marginal_j") is not None:
        out(f"marginal energy (idle subtracted): {render.fmt_si(e['marginal_j'], 'J')}")
    if result.get("j_per_token") is not None:
        out(f"energy per token: {render.fmt_si(result['j_per_token'], 'J')} over {result['tokens']} tokens")
    c = result.get("carbon")
    if c:
        line = f"CO2e: {render.fmt_si(c['g_co2e'], 'g')} at {c['intensity_g_per_kwh']:g} g/kWh ({c['region']})"
        if c.get("g_co2e_per_1k_tokens") is not None:
            line += f", {render.fmt_si(c['g_co2e_per_1k_tokens'], 'g')} per 1k tokens"
        out(line)
    for w in result.get("warnings", []):
        render.warn(w)
    if result.get("partial"):
        render.warn("interrupted: this is a partial measurement (up to when the command stopped)")


def _repeated(cmd, tokens, meter, region, child_stdout, powercap_root, runs, warmup, json_out, render) -> None:
    """``--runs N``: hyperfine-style median and spread of N runs; the result can be gated."""
    import contextlib

    from greenbench.measurement import run_command_repeated

    with contextlib.ExitStack() as stack:
        state = {"advance": None, "done": 0}

        def progress(desc: str, completed: int, total: int) -> None:
            if json_out or render.QUIET:
                return
            if state["advance"] is None:
                state["advance"] = stack.enter_context(render.progress("measure", total=total))
            state["advance"](completed - state["done"], description=f"measure: {desc}")
            state["done"] = completed

        doc = run_command_repeated(cmd, runs=runs, warmup=warmup, tokens=tokens, meters=meter or None, region=region,
                                   child_stdout=child_stdout, sysfs_root=powercap_root, progress=progress)
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(doc))
    elif doc.get("metrics"):
        b = doc["metrics"]["block"]
        out = typer.echo
        out(f"greenbench measure: {' '.join(cmd)}  ({b['rounds']} runs, {warmup} warmup)")
        out(f"  Time   (median ± IQR): {render.fmt_si(b['duration_s'], 's')} ± {render.fmt_si(b['duration_s_iqr'], 's')}"
            f"    [{render.fmt_si(min(b['duration_s_samples']), 's')} … {render.fmt_si(max(b['duration_s_samples']), 's')}]")
        if b.get("energy_j") is not None:
            es = b["energy_j_samples"]
            out(f"  Energy (median ± IQR): {render.fmt_si(b['energy_j'], 'J')} ± {render.fmt_si(b['energy_j_iqr'], 'J')}"
                f"    [{render.fmt_si(min(es), 'J')} … {render.fmt_si(max(es), 'J')}]   method: {doc['energy']['method']}")
        else:
            out("  Energy: below what the counters can resolve in every run")
        if b.get("j_per_token") is not None:
            out(f"  Energy per token: {render.fmt_si(b['j_per_token'], 'J')} over {b['tokens']} tokens")
        c = doc.get("carbon")
        if c:
            out(f"  CO2e per run: {render.fmt_si(c['g_co2e'] / max(1, b['rounds']), 'g')} at {c['intensity_g_per_kwh']:g} "
                f"g/kWh ({c['region']})")
    for w in doc.get("warnings", []):
        render.warn(w)
    if doc.get("partial"):
        render.warn(f"partial: {doc.get('partial_reason')}")
    if doc.get("exit_code"):
        raise typer.Exit(doc["exit_code"])
