"""Energy -> grams CO2e: the ``carbon`` block of a result, and what-if scenario rows.

Terms:
    IT energy: the joules the meters counted (CPU, GPU, RAM ...), ``it_energy_j``.
    PUE: power usage effectiveness, facility energy / IT energy (>= 1; 1.0 by default, i.e. cooling
        and power distribution are not counted unless you say so).
    facility energy: IT energy x PUE, ``energy_j``; every gram here is computed from it.
    idle-subtracted energy: IT energy minus the machine's idle draw over the same window (what the
        workload added to an idle machine); its grams, at the same *average* grid intensity, are
        reported beside the total as ``idle_subtracted_g_co2e``, never instead of it. This is not a
        marginal emission: a marginal emission factor (the intensity of the plant that answers an
        extra load) is a different, usually higher, figure that greenbench does not have. Results
        written before this name existed call the same figures ``marginal_g_co2e`` and
        ``marginal_energy_j``; :func:`inputs_from_result` still reads them.
    boundary: every intensity's ``source`` says what it counts (``lifecycle``, ``direct combustion``,
        ...) and its ``year``; see :mod:`greenbench.carbon.regions` and :mod:`greenbench.carbon.sources`.
    kWh per million tokens: facility energy per token x 10^6 / 3.6e6 J/kWh, the unit operators plan with.

Defaults, in order: the ``region``/``pue`` argument (a profile's ``[carbon]`` table or ``--region``),
then ``GREENBENCH_REGION`` / ``GREENBENCH_PUE``, then ``region`` / ``pue`` in
``<config dir>/config.toml``; with no region anywhere the world average is used and the block says so
(``default_region_used: true`` and a ``warning``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from greenbench.errors import GreenbenchError

__all__ = [
    "attribute",
    "scenarios",
    "inputs_from_result",
    "configured_region",
    "configured_pue",
    "J_PER_KWH",
    "DEFAULT_SCENARIOS",
]

J_PER_KWH = 3.6e6
ENV_REGION = "GREENBENCH_REGION"
ENV_PUE = "GREENBENCH_PUE"
DEFAULT_SCENARIOS = ("grid", "solar", "wind", "nuclear", "hydro", "gas", "coal")

WORLD_WARNING = (
    "no region configured: carbon uses the WORLD AVERAGE grid intensity ({value:g} g CO2e/kWh), which can "
    "be off by 10x for a real grid; set --region, carbon.region in the profile, GREENBENCH_REGION, or "
    "region = \"FRA\" in {config}"
)


# ---------------------------------------------------------------------------------------------
# configuration


def _config_path() -> Path:
    from greenbench.fsutil import config_dir

    return config_dir() / "config.toml"


def _read_config() -> tuple[dict, Path]:
    from greenbench.config import read

    return read()


def configured_region() -> tuple[str | None, str]:
    """The region configured outside the command line: ``(code, origin)``, or ``(None, 'default')``."""
    env = os.environ.get(ENV_REGION, "").strip()
    if env:
        return env, f"environment variable {ENV_REGION}"
    data, path = _read_config()
    value = data.get("region")
    if value is not None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(float(value))
        if not isinstance(value, str) or not value.strip():
            raise GreenbenchError(f"{path}: 'region' must be a string such as \"FRA\", got {value!r}", "fix or remove the key")
        return value, f"{path} (key 'region')"
    return None, "default"


def _check_pue(value: Any, origin: str) -> float:
    try:
        pue = float(value)
    except (TypeError, ValueError):
        raise GreenbenchError(f"PUE from {origin} is not a number: {value!r}", "PUE is facility energy / IT energy, e.g. 1.2") from None
    if not math.isfinite(pue) or pue < 1.0:
        raise GreenbenchError(
            f"PUE from {origin} must be a number >= 1.0, got {value!r}",
            "PUE is facility energy / IT energy: 1.0 counts IT only, a typical data centre is 1.1-1.6",
        )
    return pue


def configured_pue() -> tuple[float, str]:
    """The PUE configured outside the command line: ``(pue, origin)``; 1.0 when none is set."""
    env = os.environ.get(ENV_PUE, "").strip()
    if env:
        return _check_pue(env, f"environment variable {ENV_PUE}"), f"environment variable {ENV_PUE}"
    data, path = _read_config()
    if data.get("pue") is not None:
        origin = f"{path} (key 'pue')"
        return _check_pue(data["pue"], origin), origin
    return 1.0, "default"


def _resolve_defaults(region: str | None, pue: float | None):
    from greenbench.carbon.regions import WORLD, resolve_region

    default_used = False
    if region is not None:
        reg = resolve_region(str(region), origin="the region argument")
        region_origin = "argument"
    else:
        code, region_origin = configured_region()
        if code is None:
            reg = resolve_region(WORLD)
            default_used = True
        else:
            reg = resolve_region(code, origin=region_origin)
    if pue is not None:
        pue_value, pue_origin = _check_pue(pue, "the pue argument"), "argument"
    else:
        pue_value, pue_origin = configured_pue()
    return reg, region_origin, default_used, pue_value, pue_origin


def _check_energy(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise GreenbenchError(f"{what} must be a finite number of joules >= 0, got {value!r}", "pass the measured energy in joules")
    return float(value)


def _check_tokens(tokens: Any) -> int | None:
    if tokens is None:
        return None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        if isinstance(tokens, float) and tokens.is_integer() and tokens >= 0:
            return int(tokens)
        raise GreenbenchError(f"tokens must be a whole number >= 0, got {tokens!r}", "pass the number of tokens processed")
    return tokens


def _grams(energy_j: float | None, intensity: float) -> float | None:
    if energy_j is None:
        return None
    return energy_j / J_PER_KWH * intensity


def _per_1k(grams: float | None, tokens: int | None) -> float | None:
    if grams is None or not tokens:
        return None
    return grams / tokens * 1000.0


def _kwh_per_mtok(energy_j: float, tokens: int | None) -> float | None:
    if not tokens:
        return None
    return energy_j / J_PER_KWH / tokens * 1e6


# ---------------------------------------------------------------------------------------------
# the carbon block


def attribute(
    energy_j: float,
    *,
    tokens: int | None = None,
    region: str | None = None,
    pue: float | None = None,
    marginal_energy_j: float | None = None,
    energy_method: str | None = None,
) -> dict:
    """Grams CO2e for ``energy_j`` joules of IT energy: the result document's ``carbon`` block.

    Args:
        energy_j: IT energy the meters counted, joules.
        tokens: tokens the energy was spent on (for ``g_co2e_per_1k_tokens`` and
            ``kwh_per_million_tokens``); None leaves those null.
        region: a region code (see :func:`~greenbench.carbon.regions.resolve_region`); None means
            ``GREENBENCH_REGION``, else ``region`` in the user config, else the world average (with
            ``default_region_used: true`` and a ``warning``).
        pue: facility/IT energy ratio >= 1; None means ``GREENBENCH_PUE``, else ``pue`` in the user
            config, else 1.0.
        marginal_energy_j: idle-subtracted IT energy, joules (the runner's ``energy.marginal_j``); None
            leaves ``idle_subtracted_g_co2e`` null.
        energy_method: ``counter``/``estimate``/``simulated`` (or ``given``), copied into the block so
            that grams from estimated joules are never read as measured.

    Returns:
        A JSON-ready dict: ``region``, ``region_name``, ``region_origin``, ``intensity_g_per_kwh``,
        ``intensity_source``, ``pue``, ``pue_origin``, ``it_energy_j``, ``energy_j`` (facility),
        ``g_co2e``, ``tokens``, ``g_co2e_per_1k_tokens``, ``kwh_per_million_tokens``,
        ``idle_subtracted_energy_j``, ``idle_subtracted_g_co2e``, ``default_region_used``, ``warning``
        (and ``energy_method`` when given).

    Raises:
        GreenbenchError: unknown region, PUE < 1, negative or non-finite energy, bad tokens.
    """
    it_j = _check_energy(energy_j, "energy_j")
    marginal_j = None if marginal_energy_j is None else _check_energy(marginal_energy_j, "marginal_energy_j")
    tokens = _check_tokens(tokens)
    reg, region_origin, default_used, pue_value, pue_origin = _resolve_defaults(region, pue)
    return _block(reg, region_origin, default_used, pue_value, pue_origin, it_j, marginal_j, tokens, energy_method)


def _block(reg, region_origin, default_used, pue_value, pue_origin, it_j, marginal_j, tokens, energy_method) -> dict:
    facility_j = it_j * pue_value
    facility_marginal_j = None if marginal_j is None else marginal_j * pue_value
    g = _grams(facility_j, reg.intensity_g_per_kwh)
    warning = None
    if default_used:
        warning = WORLD_WARNING.format(value=reg.intensity_g_per_kwh, config=_config_path())
    out = {
        "region": reg.code,
        "region_name": reg.name,
        "region_origin": region_origin,
        "intensity_g_per_kwh": reg.intensity_g_per_kwh,
        "intensity_source": dict(reg.source),
        "pue": pue_value,
        "pue_origin": pue_origin,
        "it_energy_j": it_j,
        "energy_j": facility_j,
        "g_co2e": g,
        "tokens": tokens,
        "g_co2e_per_1k_tokens": _per_1k(g, tokens),
        "kwh_per_million_tokens": _kwh_per_mtok(facility_j, tokens),
        "idle_subtracted_energy_j": marginal_j,
        "idle_subtracted_g_co2e": _grams(facility_marginal_j, reg.intensity_g_per_kwh),
        "default_region_used": default_used,
        "warning": warning,
    }
    if energy_method is not None:
        out["energy_method"] = energy_method
    return out


# ---------------------------------------------------------------------------------------------
# results


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def inputs_from_result(doc: Mapping[str, Any], source: str = "result") -> dict:
    """What carbon needs from a result document.

    - ``energy_j``: ``energy.total_j`` if present, else the sum of ``energy.meters[].joules`` whose
      ``in_total`` is not false.
    - ``tokens``: ``carbon.tokens`` if the run recorded it (what it passed to :func:`attribute`), else
      ``workload.new_tokens`` x repeats, repeats being the number of ``metrics.decode.j_per_token_samples``
      (one per repeat), else ``run.repeats``, else 1; for training results
      ``metrics.train.tokens`` if present. So per-1k-token figures are per *generated* token, with
      the prefill energy included in the total.
    - ``marginal_energy_j``: the idle-subtracted energy: ``energy.marginal_j`` if present, else
      ``carbon.idle_subtracted_energy_j``, else ``carbon.marginal_energy_j`` (its name in older results).
    - ``region``, ``pue``, ``default_region_used``: from the result's ``carbon`` block, if any.
    - ``energy_method``: ``energy.method``.

    Raises:
        GreenbenchError: the document has no usable energy.
    """
    energy = doc.get("energy") if isinstance(doc.get("energy"), Mapping) else {}
    carbon = doc.get("carbon") if isinstance(doc.get("carbon"), Mapping) else {}
    total = _num(energy.get("total_j"))
    if total is None:
        meters = energy.get("meters")
        if isinstance(meters, list) and meters:
            vals = [
                _num(m.get("joules"))
                for m in meters
                if isinstance(m, Mapping) and m.get("in_total", True) is not False
            ]
            if vals and all(v is not None for v in vals):
                total = sum(vals)  # type: ignore[arg-type]
    if total is None:
        raise GreenbenchError(
            f"{source} has no usable energy: neither energy.total_j nor numeric energy.meters[].joules",
            "give a result written by `greenbench run`, or use --joules J",
        )
    tokens = carbon.get("tokens")
    tokens_basis = "carbon.tokens"
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        tokens, tokens_basis = _tokens_from_workload(doc)
    marginal = _num(energy.get("marginal_j"))
    if marginal is None:
        marginal = _num(carbon.get("idle_subtracted_energy_j"))
    if marginal is None:
        marginal = _num(carbon.get("marginal_energy_j"))  # results written before the rename
    return {
        "energy_j": total,
        "tokens": tokens,
        "tokens_basis": tokens_basis,
        "marginal_energy_j": marginal,
        "region": carbon.get("region") if isinstance(carbon.get("region"), str) else None,
        "pue": _num(carbon.get("pue")),
        "default_region_used": bool(carbon.get("default_region_used")),
        "energy_method": energy.get("method") if isinstance(energy.get("method"), str) else None,
    }


def _tokens_from_workload(doc: Mapping[str, Any]) -> tuple[int | None, str]:
    workload = doc.get("workload") if isinstance(doc.get("workload"), Mapping) else {}
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), Mapping) else {}
    if workload.get("kind") == "training":
        train = metrics.get("train") if isinstance(metrics.get("train"), Mapping) else {}
        t = train.get("tokens")
        if isinstance(t, int) and not isinstance(t, bool):
            return t, "metrics.train.tokens"
    new = workload.get("new_tokens")
    if not isinstance(new, int) or isinstance(new, bool):
        return None, "none (workload.new_tokens missing)"
    decode = metrics.get("decode") if isinstance(metrics.get("decode"), Mapping) else {}
    samples = decode.get("j_per_token_samples")
    if isinstance(samples, list) and samples:
        return new * len(samples), f"workload.new_tokens x {len(samples)} repeats (metrics.decode samples)"
    run = doc.get("run") if isinstance(doc.get("run"), Mapping) else {}
    repeats = run.get("repeats")
    if isinstance(repeats, int) and repeats > 0:
        return new * repeats, f"workload.new_tokens x {repeats} repeats (run.repeats)"
    return new, "workload.new_tokens (1 repeat assumed)"


# ---------------------------------------------------------------------------------------------
# scenarios


def scenarios(
    result_or_energy: Mapping[str, Any] | float,
    names: Iterable[str] | None = None,
    mix: Mapping[str, float] | None = None,
    *,
    tokens: int | None = None,
    region: str | None = None,
    pue: float | None = None,
    marginal_energy_j: float | None = None,
) -> list[dict]:
    """What-if rows: the same energy under other electricity sources.

    Args:
        result_or_energy: a result document (energy, tokens, region and PUE are read as in
            :func:`inputs_from_result`) or IT energy in joules.
        names: scenario names (see :func:`~greenbench.carbon.sources.resolve_source`); None with no
            ``mix`` gives :data:`DEFAULT_SCENARIOS`. ``grid`` is the run's own region.
        mix: ``{name: weight}`` with weights summing to 1; adds one row for the blend.
        tokens, region, pue, marginal_energy_j: override (or, for a bare energy, give) those inputs.

    Returns:
        One dict per scenario, in order, then the mix: ``name``, ``intensity_g_per_kwh``, ``source``,
        ``pue``, ``energy_j`` (facility), ``g_co2e``, ``g_co2e_per_1k_tokens``,
        ``kwh_per_million_tokens``, ``idle_subtracted_g_co2e``, ``tokens``.
    """
    from greenbench.carbon.regions import resolve_region
    from greenbench.carbon.sources import check_mix, resolve_source

    if isinstance(result_or_energy, Mapping):
        inp = inputs_from_result(result_or_energy)
        it_j = inp["energy_j"]
        tokens = inp["tokens"] if tokens is None else tokens
        region = inp["region"] if region is None else region
        pue = inp["pue"] if pue is None else pue
        marginal_energy_j = inp["marginal_energy_j"] if marginal_energy_j is None else marginal_energy_j
    else:
        it_j = result_or_energy
    it_j = _check_energy(it_j, "energy_j")
    tokens = _check_tokens(tokens)
    marginal_j = None if marginal_energy_j is None else _check_energy(marginal_energy_j, "marginal_energy_j")
    pue_value = _check_pue(pue, "the pue argument") if pue is not None else configured_pue()[0]
    own_region: list = []

    def grid(code: str | None):
        if code:
            return resolve_region(code, origin="--scenario grid:" + code)
        if not own_region:
            own_region.append(_resolve_defaults(region, pue_value)[0])
        return own_region[0]

    names = list(names) if names is not None else ([] if mix else list(DEFAULT_SCENARIOS))
    sources = [resolve_source(n, grid) for n in names]
    if mix:
        check_mix(dict(mix))
        parts = [(resolve_source(n, grid), float(w)) for n, w in mix.items()]
        intensity = sum(s.intensity_g_per_kwh * w for s, w in parts)
        from greenbench.carbon.sources import Source

        label = "mix(" + ",".join(f"{s.name}={w:g}" for s, w in parts) + ")"
        sources.append(
            Source(
                label,
                intensity,
                {
                    "dataset": "mix",
                    "boundary": _mix_boundary([s.source for s, _ in parts]),
                    "year": None,
                    "year_note": "each component states its own year",
                    "components": [
                        {"name": s.name, "weight": w, "intensity_g_per_kwh": s.intensity_g_per_kwh, "source": s.source}
                        for s, w in parts
                    ],
                },
            )
        )
    facility_j = it_j * pue_value
    facility_marginal_j = None if marginal_j is None else marginal_j * pue_value
    rows = []
    for s in sources:
        g = _grams(facility_j, s.intensity_g_per_kwh)
        rows.append(
            {
                "name": s.name,
                "intensity_g_per_kwh": s.intensity_g_per_kwh,
                "source": s.source,
                "pue": pue_value,
                "energy_j": facility_j,
                "tokens": tokens,
                "g_co2e": g,
                "g_co2e_per_1k_tokens": _per_1k(g, tokens),
                "kwh_per_million_tokens": _kwh_per_mtok(facility_j, tokens),
                "idle_subtracted_g_co2e": _grams(facility_marginal_j, s.intensity_g_per_kwh),
            }
        )
    return rows


def _mix_boundary(sources: list[dict]) -> str:
    """The boundary of a mix: its components' common boundary, else ``mixed (...)`` naming them."""
    bounds = sorted({str(src.get("boundary") or "not stated") for src in sources})
    return bounds[0] if len(bounds) == 1 else "mixed (" + ", ".join(bounds) + ")"


def attribute_result(
    doc: Mapping[str, Any],
    *,
    tokens: int | None = None,
    region: str | None = None,
    pue: float | None = None,
    source: str = "result",
) -> dict:
    """Re-attribute a result document's energy (see :func:`inputs_from_result`).

    The region and PUE are the ones the result recorded unless overridden. A result that was
    attributed with the world average because no region was configured keeps that region and its
    warning (the run's real location is unknown); pass ``region`` to correct it.
    """
    inp = inputs_from_result(doc, source)
    tokens_basis = inp["tokens_basis"] if tokens is None else "--tokens"
    tokens = inp["tokens"] if tokens is None else tokens
    if region is None and inp["region"] is not None:
        from greenbench.carbon.regions import resolve_region

        reg = resolve_region(inp["region"], origin=f"{source} carbon.region")
        pue_value, pue_origin = (
            (_check_pue(pue, "the pue argument"), "argument")
            if pue is not None
            else ((_check_pue(inp["pue"], f"{source} carbon.pue"), f"{source} carbon.pue") if inp["pue"] is not None else configured_pue())
        )
        block = _block(
            reg,
            f"{source} carbon.region",
            inp["default_region_used"],
            pue_value,
            pue_origin,
            _check_energy(inp["energy_j"], "energy"),
            None if inp["marginal_energy_j"] is None else _check_energy(inp["marginal_energy_j"], "marginal energy"),
            _check_tokens(tokens),
            inp["energy_method"],
        )
    else:
        block = attribute(
            inp["energy_j"],
            tokens=tokens,
            region=region,
            pue=pue if pue is not None else inp["pue"],
            marginal_energy_j=inp["marginal_energy_j"],
            energy_method=inp["energy_method"],
        )
    block["tokens_basis"] = tokens_basis
    return block


def check_settings(region: str | None = None, pue: float | None = None) -> None:
    """Resolve region and PUE exactly as :func:`attribute` will (arguments, environment, config), so a
    bad setting fails before a benchmark runs rather than after it.

    Raises:
        GreenbenchError: an unknown region or an invalid PUE, from wherever it was configured.
    """
    attribute(0.0, region=region, pue=pue)
