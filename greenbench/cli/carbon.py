"""`greenbench carbon`: grams CO2e for an energy or a result, and what-if energy-source scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from greenbench.errors import GreenbenchError


def register(app: typer.Typer) -> None:
    """Register ``greenbench carbon`` on the root app."""
    app.command("carbon")(carbon)


def carbon(
    result: Optional[Path] = typer.Argument(
        None, help="A result JSON written by `greenbench run` (energy, tokens and region are read from it).", show_default=False
    ),
    joules: Optional[float] = typer.Option(None, "--joules", "-j", help="IT energy in joules (instead of RESULT)."),
    tokens: Optional[int] = typer.Option(None, "--tokens", "-n", min=0, help="Tokens the energy was spent on (per-1k-token figures)."),
    marginal_joules: Optional[float] = typer.Option(
        None, "--idle-subtracted-joules", "--marginal-joules",
        help="Idle-subtracted energy in joules, reported beside the total (at the same average intensity).",
    ),
    region: Optional[str] = typer.Option(
        None,
        "--region",
        "-r",
        help="FRA, FR, US-CA, usa:california, CA-ON, SE1, gcp:europe-west1, WORLD, or a number in g CO2e/kWh. "
        "Default: the result's region, else GREENBENCH_REGION, else `region` in the user config.toml, else the world average.",
    ),
    pue: Optional[float] = typer.Option(None, "--pue", help="Power usage effectiveness (facility/IT energy, >= 1). Default: GREENBENCH_PUE, config `pue`, else 1.0."),
    scenario: Optional[list[str]] = typer.Option(
        None,
        "--scenario",
        "-s",
        help="Comma-separated what-if sources. Plain names are IPCC AR5 lifecycle medians: gas (combined cycle), coal, "
        "nuclear, wind (onshore), wind-offshore, solar (utility PV), solar-rooftop, hydro, geothermal, csp, biomass; "
        "codecarbon:NAME is codecarbon's table (gas, coal and oil there are direct combustion); grid (the run's "
        "region), grid:REGION, or a number.",
    ),
    mix: Optional[str] = typer.Option(None, "--mix", help="A user-defined mix as fractions summing to 1, e.g. solar=0.6,wind=0.3,gas=0.1."),
    list_regions: bool = typer.Option(False, "--list-regions", help="List every known region and its intensity, then exit."),
    json_out: bool = typer.Option(False, "--json", help="Print only JSON on stdout."),
) -> None:
    """Grams CO2e for an energy (--joules J) or a result file, from offline grid intensities (codecarbon's data).

    No network access: intensities are read from the installed codecarbon package's data files.
    """
    from greenbench import carbon as lib

    if list_regions:
        _list_regions(lib, json_out)
        return
    if result is not None and joules is not None:
        raise GreenbenchError(
            "give either RESULT or --joules, not both",
            "`greenbench carbon RESULT` re-attributes a result; `greenbench carbon --joules J` converts an energy",
        )
    if result is None and joules is None:
        raise GreenbenchError(
            "nothing to convert: give a result file or --joules J",
            "e.g. `greenbench carbon --joules 3600 --region FRA` or `greenbench carbon results/run.json --scenario solar,gas`",
        )
    names = lib.parse_names(scenario)
    mix_spec = lib.parse_mix(mix) if mix is not None else None

    if result is not None:
        if marginal_joules is not None:
            raise GreenbenchError(
                "--idle-subtracted-joules goes with --joules", "a result's idle-subtracted energy is read from the result"
            )
        doc = _load_result(result)
        block = lib.attribute_result(doc, tokens=tokens, region=region, pue=pue, source=str(result))
        subject: Any = doc
    else:
        block = lib.attribute(
            joules, tokens=tokens, region=region, pue=pue, marginal_energy_j=marginal_joules, energy_method="given"
        )
        subject = joules
    rows = None
    if names or mix_spec:
        rows = lib.scenarios(
            subject,
            names,
            mix_spec,
            tokens=block["tokens"],
            region=block["region"],
            pue=block["pue"],
            marginal_energy_j=block["idle_subtracted_energy_j"],
        )

    from greenbench.cli import render

    if json_out:
        from greenbench.canonical import canonical_bytes

        doc_out = dict(block)
        if rows is not None:
            doc_out["scenarios"] = rows
        if block.get("warning"):
            render.warn(block["warning"])
        render.print_json_bytes(canonical_bytes(doc_out))
        return
    _render_block(render, block, result)
    if rows is not None:
        _render_scenarios(render, block, rows)
    if block.get("warning"):
        render.warn(block["warning"])


def _load_result(path: Path) -> dict:
    """A result file or a signed envelope of one (verified)."""
    from greenbench.results import load_any

    return load_any(path)


def _boundary(src: dict) -> str:
    """The boundary of a factor in a word or two (``lifecycle``, ``direct combustion``, ``mixed``)."""
    b = src.get("boundary")
    if src.get("dataset") == "mix":
        parts = {_boundary(c.get("source") or {}) for c in src.get("components", [])}
        return parts.pop() if len(parts) == 1 else "mixed"
    if not b:
        return "not stated"
    return "user-given" if src.get("dataset") == "user" else str(b).split(" (")[0]


def _short_source(src: dict, long: bool = True) -> str:
    """One line naming where a factor came from (no square brackets: rich would read them as markup)."""
    ds = src.get("dataset")
    if ds == "codecarbon":
        year = f" ({src['year']})" if src.get("year") else ""
        if not long:
            return f"codecarbon{year}"
        where = f"{src.get('file', '').rsplit('/', 1)[-1]}:{src.get('key')}"
        return f"codecarbon {src.get('package_version') or '?'} {where}{year}"
    if ds == "IPCC AR5":
        return f"IPCC AR5 median, {src.get('row')} ({src.get('year')})" if long else "IPCC AR5"
    if ds == "mix":
        return "weighted mean" if long else "mix"
    if ds == "user":
        return f"user-supplied ({src.get('origin', 'argument')})" if long else "user"
    return str(ds)


def _g(value: float | None, unit: str = "g") -> str:
    if value is None:
        return "-"
    return f"{value:.4g} {unit}"


def _render_block(render, block: dict, result: Path | None) -> None:
    method = block.get("energy_method")
    method_note = {"given": "given on the command line", None: "method not recorded"}.get(method, method)
    rows = [
        ("region", f"{block['region']} ({block['region_name']})"),
        ("grid intensity", f"{block['intensity_g_per_kwh']:.4g} g CO2e/kWh"),
        ("intensity source", _short_source(block["intensity_source"])),
        ("intensity boundary", block["intensity_source"].get("boundary") or "not stated"),
        ("PUE", f"{block['pue']:g} ({block['pue_origin']})"),
        ("IT energy", f"{render.fmt_si(block['it_energy_j'], 'J')} ({method_note})"),
        ("facility energy", render.fmt_si(block["energy_j"], "J")),
        ("CO2e", _g(block["g_co2e"])),
    ]
    if block.get("idle_subtracted_g_co2e") is not None:
        rows.append(("CO2e, idle subtracted (average intensity)", _g(block["idle_subtracted_g_co2e"])))
    if block.get("tokens"):
        basis = block.get("tokens_basis")
        rows.append(("tokens", f"{block['tokens']}" + (f" ({basis})" if basis else "")))
        rows.append(("CO2e per 1k tokens", _g(block["g_co2e_per_1k_tokens"])))
        rows.append(("kWh per million tokens", f"{block['kwh_per_million_tokens']:.4g} kWh"))
    title = f"Carbon: {result}" if result is not None else "Carbon"
    render.table(title, ["quantity", ("value", "right")], rows, overflow="fold")


def _render_scenarios(render, block: dict, rows: list[dict]) -> None:
    per_tok = bool(block.get("tokens"))
    cols: list[Any] = ["scenario", ("g CO2e/kWh", "right"), ("g CO2e", "right")]
    if per_tok:
        cols.append(("g CO2e / 1k tokens", "right"))
    if block.get("idle_subtracted_g_co2e") is not None:
        cols.append(("idle-subtracted g CO2e", "right"))
    cols += ["boundary", "source"]
    out = []
    parts = None
    for r in rows:
        is_mix = r["source"].get("dataset") == "mix"
        if is_mix:
            parts = ", ".join(f"{c['name']} {c['weight']:g}" for c in r["source"]["components"])
        line: list[Any] = ["mix" if is_mix else r["name"], f"{r['intensity_g_per_kwh']:.4g}", _g(r["g_co2e"], "")]
        if per_tok:
            line.append(_g(r["g_co2e_per_1k_tokens"], ""))
        if block.get("idle_subtracted_g_co2e") is not None:
            line.append(_g(r["idle_subtracted_g_co2e"], ""))
        line += [_boundary(r["source"]), _short_source(r["source"], long=False)]
        out.append(line)
    if per_tok:
        caption = (
            f"energy cost: {block['kwh_per_million_tokens']:.4g} kWh per million tokens "
            f"(facility energy, PUE {block['pue']:g}), the same under every source"
        )
    else:
        caption = "give --tokens N (or a result) for per-token figures and kWh per million tokens"
    if parts:
        caption += f"; mix = {parts}"
    render.table("What-if: the same energy from other sources", cols, out, caption=caption, overflow="fold")


def _list_regions(lib, json_out: bool) -> None:
    from greenbench.cli import render

    regions = lib.all_regions()
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(
            canonical_bytes(
                [
                    {"code": r.code, "name": r.name, "intensity_g_per_kwh": r.intensity_g_per_kwh, "source": r.source}
                    for r in regions
                ]
            )
        )
        return
    render.table(
        "Regions (grid intensity from codecarbon's bundled data)",
        ["code", "name", ("g CO2e/kWh", "right"), "source"],
        [(r.code, r.name, f"{r.intensity_g_per_kwh:.4g}", _short_source(r.source, long=False)) for r in regions],
    )
