import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/fakes.py


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test writes to the real user config/cache/store or reads the user's region config."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("GREENBENCH_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("GREENBENCH_STORE", str(base / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.delenv("GREENBENCH_REGION", raising=False)
    monkeypatch.delenv("GREENBENCH_PUE", raising=False)
    monkeypatch.delenv("GREENBENCH_POWERCAP_DIR", raising=False)


@pytest.fixture(autouse=True)
def _quick_period_probes(monkeypatch):
    """Fake counters that never move would make every probe poll them for the full give-up time; tests that
    time a moving counter raise these again (same code path, shorter patience)."""
    from greenbench.meters import base, nvml

    monkeypatch.setattr(base, "PERIOD_PROBE_GIVEUP_S", 0.03)
    monkeypatch.setattr(base, "PERIOD_PROBE_TIMEOUT_S", 0.1)
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 0.06)


def _nvidia_gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked @pytest.mark.gpu run only where NVML sees a GPU."""
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if gpu_items and not _nvidia_gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU (NVML found none)")
        for item in gpu_items:
            item.add_marker(skip)
