"""Grid carbon intensity by region, read offline from the installed codecarbon package's data files.

Terms:
    grid carbon intensity: grams of CO2-equivalent emitted per kWh of electricity drawn from a grid
        (``intensity_g_per_kwh``), an annual average for a location.
    region code: greenbench's canonical name for a location (see :func:`resolve_region`):

        ============================  ==========================  ==============================================
        kind                          canonical code              also accepted
        ============================  ==========================  ==============================================
        country (ISO 3166-1)          ``FRA``                     ``FR``, ``fra``, ``France``
        US state (EPA eGRID)          ``US-CA``                   ``usa:california``, ``us:ca``
        Canadian province             ``CA-ON``                   ``can:ontario``
        Chinese province (MEE/NBS)    ``CN-BJ``                   ``chn:beijing``
        Nordic bidding zone           ``SE-SE1``, ``NO-NO2``,     ``SE1``, ``swe:se1``, ``fin:fi``
                                      ``FI-FI``
        cloud region                  ``gcp:europe-west1``
        world average                 ``WORLD``                   ``world``
        a number (g CO2e/kWh)         ``350``                     ``350g``, ``350 g/kWh``
        ============================  ==========================  ==============================================

Every :class:`Region` carries ``source``: the codecarbon file (path inside the package), the key in
it, the data year (``year``; null with a ``year_note`` where neither the file nor its reference gives
one), the package version, the reference the file cites, so a reader can find the number again, and
the ``boundary`` of the figure:

    ``lifecycle``: countries (codecarbon's ``global_energy_mix.json`` carries the columns of Our World
        in Data's energy dataset, whose ``carbon_intensity_elec`` is Ember's lifecycle intensity of
        generation) and GCP regions (Google's region figures use Electricity Maps' data, which apply
        the IPCC 2014 lifecycle factors);
    ``direct combustion``: the world average (IEA, CO2 from power generation), US states (EPA eGRID
        output emission rates: stack emissions), Canadian provinces (combustion factors of coal, oil
        and gas, every other source counted as 0) and Chinese provinces (MEE/NBS, CO2 only);
    ``mixed``: Nordic bidding zones (production mix x codecarbon's per-source table, which holds
        combustion figures for fossil fuels and lifecycle figures for the rest), and a country whose
        intensity codecarbon computes from its mix with that table.

The factors are the ones codecarbon's ``OfflineEmissionsTracker`` uses for the same place
(``codecarbon/core/emissions.py``): a country's ``carbon_intensity`` from ``global_energy_mix.json``;
a US state's eGRID rate (lbs/MWh converted exactly to g/kWh); a Canadian province's generation mix
weighted by coal/petroleum/natural-gas factors only (codecarbon's method, which counts every other
source as zero); the Nordic and Chinese factors as published in their files; a GCP region's
``impact`` from ``cloud/impact.csv``. Nothing here imports codecarbon or opens a socket: the files
are located with :func:`importlib.util.find_spec` and parsed with :mod:`json` and :mod:`csv`, once,
on first use.
"""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from greenbench.carbon.sources import DIRECT_COMBUSTION, LIFECYCLE
from greenbench.errors import GreenbenchError

__all__ = [
    "Region",
    "resolve_region",
    "all_regions",
    "codecarbon_data_dir",
    "codecarbon_version",
    "read_codecarbon_json",
    "WORLD",
]

WORLD = "WORLD"
MIXED = "mixed (direct combustion for fossil fuels, lifecycle for the other sources)"
USER_BOUNDARY = "as given by the user (not known to greenbench)"

#: Files inside the codecarbon package (paths relative to the package directory).
F_GLOBAL_MIX = "data/private_infra/global_energy_mix.json"
F_PER_SOURCE = "data/private_infra/carbon_intensity_per_source.json"
F_USA = "data/private_infra/2023/usa_emissions.json"
F_CANADA = "data/private_infra/2023/canada_energy_mix.json"
F_NORDIC = "data/private_infra/nordic_emissions.json"
F_CHINA = "data/private_infra/2023/china_provincial_emissions.json"
F_CLOUD = "data/cloud/impact.csv"

#: 1 lb/MWh in g/kWh (1 lb = 453.59237 g exactly; 1 MWh = 1000 kWh).
G_PER_KWH_PER_LB_PER_MWH = 0.45359237

#: Emission factors (kg CO2e/kWh) codecarbon applies to a Canadian province's generation mix; every
#: other source in the mix counts as zero. Published by the energy-usage project (Lottick et al.,
#: "Energy Usage Reports: Environmental awareness as part of algorithmic accountability", 2019,
#: github.com/responsibleproblemsolving/energy-usage, "Conversion to CO2").
CANADA_FUEL_KG_PER_KWH = {"coal": 0.995725971, "petroleum": 0.8166885263, "naturalGas": 0.7438415916}

#: ISO 3166-2:CA subdivision codes of the provinces and territories.
_CANADA_CODES = {
    "alberta": "AB",
    "british columbia": "BC",
    "manitoba": "MB",
    "new brunswick": "NB",
    "newfoundland and labrador": "NL",
    "nova scotia": "NS",
    "northwest territories": "NT",
    "nunavut": "NU",
    "ontario": "ON",
    "prince edward island": "PE",
    "quebec": "QC",
    "saskatchewan": "SK",
    "yukon": "YT",
}
#: Nordic bidding-zone prefix -> ISO 3166-1 alpha-3, as codecarbon groups them.
_NORDIC_COUNTRY = {"SE": "SWE", "NO": "NOR", "FI": "FIN", "DK": "DNK"}


@dataclass(frozen=True)
class Region:
    """A place with a grid carbon intensity.

    Attributes:
        code: canonical region code (``FRA``, ``US-CA``, ``gcp:europe-west1``, ``WORLD``, ``350``).
        name: human-readable name.
        intensity_g_per_kwh: grams CO2e per kWh drawn from the grid.
        source: where the number came from (JSON-ready dict: dataset, file, key, year, ...).
    """

    code: str
    name: str
    intensity_g_per_kwh: float
    source: dict = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------------------------------------
# codecarbon's files


@lru_cache(maxsize=1)
def codecarbon_data_dir() -> Path:
    """The installed codecarbon package directory (not imported: located through its import spec).

    Raises:
        GreenbenchError: codecarbon is not installed or its data files are missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise GreenbenchError(
            "codecarbon is not installed: greenbench reads grid carbon intensities from its data files",
            "pip install codecarbon (or give --region as a number in g CO2e/kWh)",
        )
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / F_GLOBAL_MIX).is_file():
        raise GreenbenchError(
            f"codecarbon at {root} has no {F_GLOBAL_MIX}; this codecarbon version ships its data elsewhere",
            "install a codecarbon release that bundles its data (pip install 'codecarbon>=2.8')",
        )
    return root


@lru_cache(maxsize=1)
def codecarbon_version() -> str | None:
    """The installed codecarbon distribution version, or None when unknown."""
    from importlib import metadata

    try:
        return metadata.version("codecarbon")
    except metadata.PackageNotFoundError:
        return None


def _path(rel: str) -> Path:
    return codecarbon_data_dir() / rel


@lru_cache(maxsize=None)
def read_codecarbon_json(rel: str) -> Any:
    """Parse one of codecarbon's JSON data files (cached)."""
    p = _path(rel)
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise GreenbenchError(
            f"codecarbon {codecarbon_version()} has no data file {rel} (looked in {p.parent})",
            "install a codecarbon release that ships it (pip install -U codecarbon)",
        ) from None
    except (OSError, ValueError) as exc:
        raise GreenbenchError(f"cannot read codecarbon data file {p}: {exc}") from None


def _optional_json(rel: str) -> Any:
    """A data file that older or newer codecarbon releases may lack: None when absent."""
    if not _path(rel).is_file():
        return None
    return read_codecarbon_json(rel)


def _cloud_rows() -> list[dict]:
    p = _path(F_CLOUD)
    if not p.is_file():
        return []
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error) as exc:
        raise GreenbenchError(f"cannot read codecarbon data file {p}: {exc}") from None


def _source(rel: str, key: str | None, year: Any = None, *, boundary: str, **extra: Any) -> dict:
    out = {
        "dataset": "codecarbon",
        "package_version": codecarbon_version(),
        "file": rel,
        "key": key,
        "year": year if isinstance(year, int) else None,
        "boundary": boundary,
    }
    if out["year"] is None:
        out["year_note"] = "not stated by codecarbon's file"
    out.update({k: v for k, v in extra.items() if v is not None and v != ""})
    return out


def _year_from_path(rel: str) -> int | None:
    m = re.search(r"/((?:19|20)\d\d)/", rel)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# the region table


def _norm(text: str) -> str:
    """Normalize a region name for lookup: no accents, lower case, single spaces, tight separators."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().replace("_", " ").strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([:/-])\s*", r"\1", text)
    return text


def _title(name: str) -> str:
    return " ".join(w if w in ("of", "and") else w.capitalize() for w in name.split())


class _Table:
    def __init__(self) -> None:
        self.regions: dict[str, Region] = {}
        self.aliases: dict[str, str] = {}

    def add(self, region: Region, *aliases: str) -> None:
        self.regions.setdefault(region.code, region)
        self.aliases.setdefault(_norm(region.code), region.code)
        for a in aliases:
            if a:
                self.aliases.setdefault(_norm(a), region.code)

    def alias(self, alias: str, code: str) -> None:
        self.aliases.setdefault(_norm(alias), code)


def _world_region() -> Region:
    per_source = read_codecarbon_json(F_PER_SOURCE)
    value = float(per_source["world_average"])
    return Region(
        WORLD,
        "World average",
        value,
        _source(
            F_PER_SOURCE,
            "world_average",
            2018,
            boundary=DIRECT_COMBUSTION,
            reference=per_source.get("world_average_source"),
            basis="IEA Global Energy & CO2 Status Report 2019: CO2 intensity of power generation in 2018",
        ),
    )


def _country_intensity(entry: dict, per_source: dict) -> tuple[float, str]:
    """codecarbon's rule: the file's ``carbon_intensity`` if given, else the mix x per-source factors."""
    if entry.get("carbon_intensity") is not None:
        return float(entry["carbon_intensity"]), "carbon_intensity"
    total = entry["total_TWh"]
    acc = 0.0
    covered = 0.0
    for key, twh in entry.items():
        if key.endswith("_TWh"):
            factor = per_source.get(key[: -len("_TWh")])
            if factor is not None:
                acc += twh / total * factor
                covered += twh
    if covered != total:  # codecarbon falls back to the world average here too
        return float(per_source["world_average"]), "world_average (mix incomplete)"
    return acc, "generation mix x carbon_intensity_per_source.json"


def _build() -> _Table:
    import pycountry

    t = _Table()
    world = _world_region()
    t.add(world, "world", "world average", "global", "earth")
    per_source = read_codecarbon_json(F_PER_SOURCE)

    # Countries (ISO 3166-1 alpha-3 keys).
    mix = read_codecarbon_json(F_GLOBAL_MIX)
    country_aliases: list[tuple[str, str]] = []
    for iso3, entry in mix.items():
        code = iso3.upper()
        value, field_used = _country_intensity(entry, per_source)
        name = entry.get("country_name") or code
        boundary = LIFECYCLE if field_used == "carbon_intensity" else MIXED
        basis = (
            "Our World in Data energy dataset column carbon_intensity_elec (Ember, lifecycle intensity of generation)"
            if boundary == LIFECYCLE
            else "generation mix x codecarbon's carbon_intensity_per_source.json"
        )
        t.add(Region(code, name, value, _source(F_GLOBAL_MIX, iso3, entry.get("year"), boundary=boundary,
                                                field=field_used, basis=basis)))
        country_aliases.append((name, code))
        c = pycountry.countries.get(alpha_3=code)
        if c is not None:
            country_aliases.append((c.alpha_2, code))
            for attr in ("name", "common_name", "official_name"):
                if getattr(c, attr, None):
                    country_aliases.append((getattr(c, attr), code))
    # alpha-2 codes and names after every canonical code, so a code never loses to a name.
    for alias, code in country_aliases:
        t.alias(alias, code)
    t.alias("usa", "USA")
    t.alias("uk", "GBR")

    # Cloud regions.
    for row in _cloud_rows():
        provider, reg = (row.get("provider") or "").strip().lower(), (row.get("region") or "").strip()
        if not provider or not reg or not (row.get("impact") or "").strip():
            continue
        where = ", ".join(x for x in (row.get("city") or row.get("state") or "", row.get("country_name", "")) if x)
        code = f"{provider}:{reg}"
        t.add(
            Region(
                code,
                f"{row.get('providerName') or provider} {reg} ({where})",
                float(row["impact"]),
                _source(
                    F_CLOUD,
                    code,
                    boundary=LIFECYCLE,
                    reference=row.get("source"),
                    country=row.get("countryIsoCode"),
                    basis="Google region carbon data (Electricity Maps, IPCC 2014 lifecycle factors)",
                ),
            ),
            f"{provider}/{reg}",
        )

    # US states (EPA eGRID, lbs/MWh).
    usa = _optional_json(F_USA) or {}
    meta = usa.get("_source", {}) if isinstance(usa.get("_source"), dict) else {}
    for state, rec in usa.items():
        if state.startswith("_") or state == "usa":
            continue
        sc = str(rec["regionCode"]).upper()
        code = f"US-{sc}"
        t.add(
            Region(
                code,
                f"{_title(state)}, United States",
                float(rec["emissions"]) * G_PER_KWH_PER_LB_PER_MWH,
                _source(
                    F_USA,
                    state,
                    meta.get("year", _year_from_path(F_USA)),
                    boundary=DIRECT_COMBUSTION,
                    reference=" ".join(str(meta[k]) for k in ("name", "url") if meta.get(k)) or None,
                    unit_in_file="lbs/MWh",
                ),
            ),
            f"usa:{state}",
            f"us:{state}",
            f"usa:{sc}",
            f"us:{sc}",
        )

    # Canadian provinces (generation mix in %, codecarbon's three fossil factors).
    canada = _optional_json(F_CANADA) or {}
    for prov, m in canada.items():
        if prov.startswith("_") or not isinstance(m, dict) or not m.get("total"):
            continue
        pc = _CANADA_CODES.get(_norm(prov), re.sub(r"[^A-Z]", "", prov.upper())[:6])
        code = f"CA-{pc}"
        kg = sum(m.get(fuel, 0.0) / m["total"] * f for fuel, f in CANADA_FUEL_KG_PER_KWH.items())
        t.add(
            Region(
                code,
                f"{_title(prov)}, Canada",
                kg * 1000.0,
                _source(
                    F_CANADA,
                    prov,
                    _year_from_path(F_CANADA),
                    boundary=DIRECT_COMBUSTION,
                    method=(
                        "generation mix (%) x coal 995.725971, petroleum 816.6885263, natural gas "
                        "743.8415916 g/kWh (codecarbon's factors from the energy-usage project); other "
                        "sources count as 0, as in codecarbon"
                    ),
                ),
            ),
            f"can:{prov}",
            f"ca:{prov}",
            f"can:{pc}",
        )

    # Chinese provinces (MEE/NBS, g CO2/kWh).
    china = _optional_json(F_CHINA) or {}
    cmeta = china.get("metadata", {})
    for code, rec in china.get("data", {}).items():
        names = rec.get("names", [])
        t.add(
            Region(
                code.upper(),
                f"{rec.get('description', code)}, China",
                float(rec["emission_factor"]),
                _source(
                    F_CHINA,
                    code,
                    rec.get("year", cmeta.get("year")),
                    boundary=f"{DIRECT_COMBUSTION} (CO2 only)",
                    reference=cmeta.get("source"),
                    unit_in_file=rec.get("unit"),
                    note=cmeta.get("convention"),
                ),
            ),
            *[f"chn:{n}" for n in names],
            *[f"cn:{n}" for n in names],
        )

    # Nordic bidding zones.
    nordic = _optional_json(F_NORDIC) or {}
    nmeta = nordic.get("metadata", {})
    for zone, rec in nordic.get("data", {}).items():
        zone_u = zone.upper()
        prefix = zone_u[:2]
        code = f"{prefix}-{zone_u}"
        iso3 = _NORDIC_COUNTRY.get(prefix, prefix)
        t.add(
            Region(
                code,
                f"{rec.get('description', zone)} (bidding zone {zone_u})",
                float(rec["emission_factor"]),
                _source(
                    F_NORDIC,
                    zone,
                    rec.get("year"),
                    boundary=MIXED,
                    reference=nmeta.get("source"),
                    coverage=rec.get("coverage"),
                    unit_in_file=rec.get("unit"),
                ),
            ),
            f"{iso3.lower()}:{zone}",
            f"{prefix.lower()}:{zone}",
        )
        if len(zone_u) > 2:  # SE1, NO2 ... (plain FI stays Finland the country)
            t.alias(zone_u, code)
    return t


@lru_cache(maxsize=1)
def _table() -> _Table:
    return _build()


def all_regions() -> list[Region]:
    """Every named region greenbench knows (countries, states, provinces, zones, cloud regions, WORLD)."""
    return list(_table().regions.values())


_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*(?:g(?:\s*(?:co2e?)?\s*/\s*kwh)?)?\s*$", re.I)


def _number_region(text: str, origin: str | None) -> Region | None:
    m = _NUMBER.match(text)
    if not m:
        return None
    num_text = text.strip()
    num_text = re.sub(r"\s*g.*$", "", num_text, flags=re.I)
    value = float(num_text)
    if not math.isfinite(value):
        return None
    from greenbench.canonical import format_number

    return Region(
        format_number(value),
        f"user-supplied {format_number(value)} g CO2e/kWh",
        value,
        {"dataset": "user", "given_as": text.strip(), "origin": origin or "argument", "boundary": USER_BOUNDARY,
         "year": None, "year_note": "user-supplied figure"},
    )


def resolve_region(code: str, *, origin: str | None = None) -> Region:
    """Look up a region by any accepted name, or parse a plain number in g CO2e/kWh.

    Args:
        code: ``FRA``, ``FR``, ``France``, ``US-CA``, ``usa:california``, ``gcp:europe-west1``,
            ``SE1``, ``WORLD``, ``350`` ... (case and accents do not matter).
        origin: where the code came from (``--region``, ``GREENBENCH_REGION``, a config file), named
            in the error message.

    Raises:
        GreenbenchError: unknown region (exit 2), with the closest valid names.
    """
    where = f" (from {origin})" if origin else ""
    if not isinstance(code, str) or not code.strip():
        raise GreenbenchError(
            f"empty region{where}",
            "give a region code such as FRA, US-CA, gcp:europe-west1, or a number in g CO2e/kWh",
        )
    num = _number_region(code, origin)
    if num is not None:
        return num
    if re.match(r"^\s*-\s*[0-9]", code):
        raise GreenbenchError(
            f"region {code!r}{where}: a carbon intensity cannot be negative",
            "give a number of g CO2e/kWh >= 0, or a region code",
        )
    table = _table()
    key = _norm(code)
    canonical = table.aliases.get(key)
    if canonical is not None:
        return table.regions[canonical]
    hint = _suggest(key, table)
    if re.match(r"^(aws|azure|amazon|microsoft)\b", key):
        hint = (
            "codecarbon's bundled data has carbon intensities for GCP regions only; for an AWS or Azure "
            "region give its country (e.g. IRL) or US state (e.g. US-VA). " + hint
        )
    raise GreenbenchError(f"unknown region {code!r}{where}", hint)


def _suggest(key: str, table: _Table) -> str:
    import difflib

    matches = difflib.get_close_matches(key, list(table.aliases), n=12, cutoff=0.6)
    codes: list[str] = []
    for m in matches:
        c = table.aliases[m]
        if c not in codes:
            codes.append(c)
    if codes:
        shown = ", ".join(f"{c} ({table.regions[c].name})" for c in codes[:5])
        return f"closest valid names: {shown}; `greenbench carbon --list-regions` lists all"
    return (
        "use an ISO country code (FRA or FR), a US state (US-CA), a Canadian province (CA-ON), a Nordic "
        "bidding zone (SE1), a cloud region (gcp:europe-west1), WORLD, or a number in g CO2e/kWh; "
        "`greenbench carbon --list-regions` lists all"
    )
