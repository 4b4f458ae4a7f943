"""Cross-check with codecarbon itself: its OfflineEmissionsTracker around the same workload must use the
same intensity factor (g CO2e/kWh) as greenbench for the same region, and give the same grams for
the same energy."""

from __future__ import annotations

import logging
import warnings

import pytest

import greenbench.carbon as carbon

CASES = [
    ("FRA", dict(country_iso_code="FRA")),
    ("US-CA", dict(country_iso_code="USA", region="california")),
    ("CA-ON", dict(country_iso_code="CAN", region="ontario")),
    ("SE-SE1", dict(country_iso_code="SWE", region="SE1")),
    ("CN-BJ", dict(country_iso_code="CHN", region="beijing")),
    ("gcp:europe-west1", dict(cloud_provider="gcp", cloud_region="europe-west1")),
]


def _workload() -> float:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((160, 160))
    acc = 0.0
    for _ in range(60):
        acc += float((a @ a).sum())
    return acc


@pytest.mark.parametrize("code,kwargs", CASES, ids=[c for c, _ in CASES])
def test_same_factor_as_offline_tracker(code, kwargs, tmp_path, monkeypatch):
    from codecarbon import OfflineEmissionsTracker

    monkeypatch.chdir(tmp_path)  # codecarbon looks for a .codecarbon.config in the working directory
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    with warnings.catch_warnings():  # save_to_file is deprecated in codecarbon 3 but is what 2.8 understands
        warnings.simplefilter("ignore", DeprecationWarning)
        tracker = OfflineEmissionsTracker(
            save_to_file=False, log_level="error", measure_power_secs=1, output_dir=str(tmp_path), **kwargs
        )
    tracker.start()
    _workload()
    tracker.stop()
    data = tracker.final_emissions_data
    assert data.energy_consumed > 0, "codecarbon measured no energy"
    cc_intensity = data.emissions / data.energy_consumed * 1000.0  # kg/kWh -> g/kWh

    region = carbon.resolve_region(code)
    assert region.intensity_g_per_kwh == pytest.approx(cc_intensity, rel=1e-9)

    block = carbon.attribute(data.energy_consumed * 3.6e6, region=code, pue=1.0)
    assert block["g_co2e"] == pytest.approx(data.emissions * 1000.0, rel=1e-9)
