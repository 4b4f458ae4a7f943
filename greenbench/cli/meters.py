"""`greenbench meters`: every energy meter greenbench knows, whether it is usable here, and why not."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Register ``greenbench meters`` on the root app."""
    app.command("meters")(meters)


def meters(
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Also show what a run on this backend would meter (its device scope)."
    ),
    scope: str = typer.Option("devices", "--scope", help="With --backend: devices (default) or machine."),
    json_out: bool = typer.Option(False, "--json", help="Print only JSON on stdout: a list of meter objects (with --backend: an object)."),
    powercap_root: Optional[str] = typer.Option(None, "--powercap-root", hidden=True, help="powercap sysfs root (tests)."),
) -> None:
    """List every energy meter (rapl, nvml, amd, estimate): usable here or not, why, method, domains, update period."""
    from greenbench.errors import GreenbenchError
    from greenbench.meters import probe_all

    if scope not in ("devices", "machine"):
        raise GreenbenchError(f"unknown scope {scope!r}", "use --scope devices or --scope machine")
    probes = probe_all(sysfs_root=powercap_root)
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
    plan = _plan(backend, scope, powercap_root) if backend else None
    from greenbench.cli import render

    if json_out:
        import json

        out = {"meters": docs, "run": plan} if plan is not None else docs
        render.print_json_bytes(json.dumps(out, indent=2, sort_keys=True, default=str).encode("utf-8"))
        return
    rows = []
    for p in probes:
        doms = ", ".join(d.name if d.in_total else f"({d.name})" for d in p.domains) or "-"
        rows.append([p.name, "yes" if p.usable else "no", p.method, doms, _period(p), _note(p)])
    render.table(
        "Energy meters",
        [("meter", "left", "keep"), ("usable", "left", "keep"), ("method", "left", "keep"), "domains", "update period",
         "notes"],
        rows,
        overflow="fold",
        caption="(domain) = nested, reported but not added to the total. method: counter = hardware energy counter, "
        "estimate = modelled, never a measurement.",
    )
    if plan is not None:
        render.table(
            f"A run on --backend {plan['backend']} meters: {plan['scope']['described']}",
            ["meter", "method", "device", "domains"],
            [[m["name"], m["method"], m["device"], ", ".join(m["domains"]) or "-"] for m in plan["meters"]]
            or [["-", "-", "-", "(no host meter: " + ("energy is simulated" if plan["simulated"] else "none usable") + ")"]],
            caption=(f"energy windows here last at least {plan['need_aligned_s'] * 1e3:.3g} ms with edges aligned to the "
                     f"slowest counter, {plan['need_unaligned_s'] * 1e3:.3g} ms otherwise (20 and 40 update periods; "
                     "[run] min_window_periods)") if plan["need_unaligned_s"] else None,
        )
        for w in plan["warnings"]:
            render.warn(w)


def _plan(backend: str, scope: str, powercap_root) -> dict:
    """What ``greenbench run --backend B [--scope S]`` would meter here."""
    from greenbench.backends import BACKENDS, device_scope
    from greenbench.errors import GreenbenchError
    from greenbench.meters import select
    from greenbench.meters.base import update_period_s

    if backend not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(backend, BACKENDS, n=1)
        raise GreenbenchError(f"unknown backend {backend!r}",
                              (f"did you mean {close[0]!r}? " if close else "") + f"valid backends: {', '.join(BACKENDS)}")
    sc = device_scope(backend, kind=scope)
    simulated = backend.endswith("-sim")
    chosen, warnings = ([], []) if simulated else select(None, sysfs_root=powercap_root, scope=sc)
    meters = []
    for m in chosen:
        devs = m.devices() if callable(getattr(m, "devices", None)) else []
        meters.append({
            "name": m.name,
            "method": m.method,
            "device": ", ".join(sorted({d.get("device", "?") + (f" {d['name']}" if d.get("name") else "") for d in devs})),
            "domains": [d.name for d in m.domains()],
            "update_period_s": update_period_s(m),
        })
    from greenbench.runner import MeterSet

    ms = MeterSet(chosen)
    return {
        "backend": backend,
        "scope": {**sc.as_dict(), "described": sc.describe()},
        "simulated": simulated,
        "meters": meters,
        "slowest_period_s": ms.slowest_period_s,
        "need_aligned_s": ms.need_s(True),
        "need_unaligned_s": ms.need_s(False),
        "warnings": warnings,
    }


def _period(p) -> str:
    d = p.detail or {}
    v = d.get("update_period_s")
    if not p.usable or v is None:
        return "-"
    if v == 0:
        return "continuous"
    return f"{v * 1e3:.3g} ms ({d.get('period_source', '?')})"


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
        note = f"total = {d.get('total')}; wraparound-safety read every {d.get('poll_interval_s', 0):g} s"
        return note + (f"; {d['ram_note']}" if d.get("ram_note") else "")
    if p.name == "nvml":
        return "; ".join(f"{g['domain']} {g['name']}: {g['source']}" for g in d.get("gpus", []))
    return ""
