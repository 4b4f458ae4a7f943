"""`greenbench meters`: every energy meter greenbench knows, whether it is usable here, and why not."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Register ``greenbench meters`` on the root app."""
    app.command("meters")(meters)


def meters(
    json_out: bool = typer.Option(False, "--json", help="Print only JSON on stdout: a list of meter objects."),
    powercap_root: Optional[str] = typer.Option(None, "--powercap-root", hidden=True, help="powercap sysfs root (tests)."),
) -> None:
    """List every energy meter (rapl, nvml, amd, estimate): usable here or not, why, method and domains."""
    from greenbench.meters import probe_all
    from greenbench.meters.rapl import DEFAULT_ROOT

    probes = probe_all(sysfs_root=powercap_root or DEFAULT_ROOT)
    docs = [
        {
            "name": p.name,
            "usable": p.usable,
            "method": p.method,
            "reason": p.reason,
            "domains": [{"name": d.name, "in_total": d.in_total, "method": d.method or p.method} for d in p.domains],
            "detail": p.detail,
        }
        for p in probes
    ]
    from greenbench.cli import render

    if json_out:
        import json

        render.print_json_bytes(json.dumps(docs, indent=2, sort_keys=True, default=str).encode("utf-8"))
        return
    rows = []
    for p in probes:
        doms = ", ".join(d.name if d.in_total else f"({d.name})" for d in p.domains) or "-"
        rows.append([p.name, "yes" if p.usable else "no", p.method, doms, _note(p)])
    render.table(
        "Energy meters",
        ["meter", "usable", "method", "domains", "notes"],
        rows,
        caption="(domain) = nested, reported but not added to the total. method: counter = hardware energy counter, "
        "estimate = modelled, never a measurement.",
    )


def _note(p) -> str:
    d = p.detail or {}
    if p.name == "estimate":
        return (
            f"CPU TDP {d.get('tdp_w', 0):g} W ({d.get('tdp_source')}) / {d.get('logical_cpus')} logical CPUs x this "
            f"process tree's CPU seconds; RAM {d.get('ram_w_per_gb', 0):.3g} W/GB x RSS ({d.get('ram_source')})"
        )
    if not p.usable:
        return p.reason
    if p.name == "rapl":
        return f"total = {d.get('total')}; wraparound-safety read every {d.get('poll_interval_s', 0):g} s"
    if p.name == "nvml":
        return "; ".join(f"{g['domain']} {g['name']}: {g['source']}" for g in d.get("gpus", []))
    return ""
