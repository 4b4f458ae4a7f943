"""Carbon accounting: joules -> grams CO2e, offline, with the source of every factor recorded.

Terms:
    grid carbon intensity (``intensity_g_per_kwh``): grams of CO2-equivalent per kWh drawn from a
        grid, an annual average, read from the installed codecarbon package's bundled data files
        (never over the network: no geolocation, no live API).
    region: where the electricity came from, named by a canonical code (``FRA``, ``US-CA``,
        ``CA-ON``, ``SE-SE1``, ``gcp:europe-west1``, ``WORLD``) or given as a number in g CO2e/kWh;
        see :mod:`greenbench.carbon.regions`.
    PUE: facility energy / IT energy (default 1.0); grams are computed from facility energy.
    marginal energy: idle-subtracted IT energy, reported beside the total.
    scenario: the same energy under another source or grid (``solar``, ``grid:FRA``, a mix); see
        :mod:`greenbench.carbon.sources`.

Public API: :func:`attribute` (the result's ``carbon`` block), :func:`resolve_region`,
:func:`scenarios`, :func:`attribute_result`, :func:`inputs_from_result`. Importing this package is
cheap: the data files are read on first use and cached.
"""

from __future__ import annotations

from greenbench.carbon.attribution import (
    DEFAULT_SCENARIOS,
    J_PER_KWH,
    attribute,
    attribute_result,
    check_settings,
    configured_pue,
    configured_region,
    inputs_from_result,
    scenarios,
)
from greenbench.carbon.regions import WORLD, Region, all_regions, resolve_region
from greenbench.carbon.sources import IPCC_AR5_MEDIANS, parse_mix, parse_names, resolve_source, source_names

__all__ = [
    "DEFAULT_SCENARIOS",
    "IPCC_AR5_MEDIANS",
    "J_PER_KWH",
    "WORLD",
    "Region",
    "all_regions",
    "attribute",
    "attribute_result",
    "check_settings",
    "configured_pue",
    "configured_region",
    "inputs_from_result",
    "parse_mix",
    "parse_names",
    "resolve_region",
    "resolve_source",
    "scenarios",
    "source_names",
]
