"""The web leaderboard in a real browser: Playwright driving the system's chromium (Debian's package).

Playwright's own browser download cannot be reached from CI, so the test launches ``/usr/bin/chromium`` (or
``GREENBENCH_CHROMIUM``) by path and is skipped where there is none. It loads ``/``, sorts a column,
filters, follows the pages, opens a result page, checks that the charts were drawn, and that no request
left the server's own origin; then does the same clicks with JavaScript switched off.
"""

from __future__ import annotations

import copy
import os
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from greenbench import signing
from greenbench.publish import store_envelope
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store.local import LocalStore
from greenbench.trust import Trust
from greenbench.workloads import identity

from test_results import minimal_doc

CHROMIUM = os.environ.get("GREENBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs chromium (apt-get install -y chromium)")

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(6, 38)))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-default-apps", "--no-first-run", "--disable-sync",
        "--disable-dev-shm-usage"]
BACKENDS = [("cpu", "estimate"), ("cuda", "counter"), ("neuromorphic-sim", "simulated")]


def work(backend: str, prompt: list[int]) -> dict:
    """A work identity as `greenbench run` writes it: the backend (and a simulated device's parameters)
    are in it, so each backend's results have their own workload.digest, while the task is shared."""
    ident = {"kind": "inference", "backend": backend, "dtype": "fp32" if backend != "cuda" else "fp16",
             "model": {"source": "generated", "kind": "synthetic-llama",
                       "config": {"layers": 2, "hidden": 64, "seed": 0, "builder_version": 1,
                                  "dtype": "fp32" if backend != "cuda" else "fp16"}},
             "prompt_token_ids": prompt, "max_new_tokens": 16, "batch_size": 1}
    if backend.endswith("-sim"):
        ident["sim"] = {"device": "loihi2-like"}
    return ident


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("browser") / "store")
    for i in range(63):  # two pages of 50
        doc = copy.deepcopy(minimal_doc())
        backend, method = BACKENDS[i % 3]
        doc["backend"], doc["energy"]["method"] = backend, method
        doc["profile"]["name"] = f"model-{i:02d}"
        ident = work(backend, [1, 2, 3] if i % 4 else [7, 8])  # two tasks, each on three backends
        doc["workload"]["identity"], doc["workload"]["digest"] = ident, identity.digest(ident)
        d = doc["metrics"]["decode"]
        d["j_per_token"] = 1e-4 * (1 + (i * 37) % 61)
        d["tokens_per_s"] = 50.0 + (i * 13) % 97
        d["j_per_token_samples"] = [d["j_per_token"] * f for f in (0.95, 1.0, 1.05)]
        doc["created"] = f"2026-02-{1 + i % 28:02d}T00:00:00Z"
        env = signing.sign_result(doc, OTHER if i == 62 else KEY, f"r{i}.json")
        store_envelope(env, signing.verify_envelope(env), store)
    assert len({identity.digest(work(b, [1, 2, 3])) for b, _ in BACKENDS}) == 3  # one work digest per backend
    app = create_app(ServerConfig(store=store, board_trust=Trust(frozenset({signing.did_key(KEY)}), "test")))
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _values(page, css: str) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all(css, "els => els.map(e => e.dataset.value)") if v]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_leaderboard_in_chromium(server, browser, javascript):
    context = browser.new_context(java_script_enabled=javascript)
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(server.url + "/")
        assert page.title().startswith("greenbench leaderboard")
        assert page.locator("#leaderboard tbody tr.row").count() == 50
        # the charts were drawn: two SVGs with markers of more than one lane, visibly laid out
        charts = page.locator("#charts svg.chart")
        assert charts.count() == 2
        for i in range(2):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 300 and box["height"] > 150
        assert page.locator("#charts svg .pt").count() >= 10
        assert page.locator("#charts svg .pt.counter").count() and page.locator("#charts svg .pt.estimate").count()
        # J/token by backend: the work group's task, run on three backends (three work digests)
        labels = page.eval_on_selector_all("#charts svg.strip text", "els => els.map(e => e.textContent)")
        assert {"cpu", "cuda", "neuromorphic-sim"} <= set(labels)
        for lane in ("counter", "estimate", "simulated"):
            assert page.locator(f"#charts svg.strip .pt.{lane}").count()
        # sort by J/token, ascending then descending: lane by lane (measured first), sorted within each
        page.click("th a[data-sort=j_per_token]")
        assert "sort=j_per_token" in page.url
        lanes = page.eval_on_selector_all("#leaderboard tr.row", "els => els.map(e => e.className)")
        assert len(lanes) == 50 and lanes == sorted(lanes, key=lambda c: ["counter", "estimate", "simulated"].index(
            c.split("lane-row-")[1]))
        for lane in ("counter", "estimate", "simulated"):
            up = _values(page, f"#leaderboard tr.lane-row-{lane} td.jpt")
            assert up == sorted(up)
        page.click("th a[data-sort=j_per_token]")
        assert "sort=-j_per_token" in page.url
        down = _values(page, "#leaderboard tr.lane-row-counter td.jpt")
        assert down == sorted(down, reverse=True) and len(down) > 1
        # filter by backend, keeping the sort
        page.select_option("#filter-backend", "cuda")
        page.click("#apply-filters")
        assert "backend=cuda" in page.url and "sort=-j_per_token" in page.url
        backends = page.eval_on_selector_all("#leaderboard td.backend", "els => els.map(e => e.textContent)")
        assert backends and set(backends) == {"cuda"}
        # the next page, then the results signed by unknown keys
        page.goto(server.url + "/")
        page.click("#next-page")
        assert "page=2" in page.url and page.locator("#leaderboard tbody tr.row").count() == 12
        page.click("#untrusted-link") if page.locator("#untrusted-link").count() else page.goto(server.url + "/?view=untrusted")
        assert "Signed by unknown keys (1)" in page.inner_text("h2#untrusted")
        # a result page: its chart of J/token per repeat and its provenance
        page.goto(server.url + "/")
        page.click("#leaderboard tbody tr:first-child a.result-link")
        assert "/result/" in page.url
        assert page.locator("svg.chart.repeats .pt").count() == 3
        assert page.locator("#meters tbody tr").count() >= 1 and page.locator("#scenarios tbody tr").count() >= 5
        assert signing.did_key(KEY) in page.inner_text("#provenance")
        raw = page.get_attribute("#raw-link", "href")
        assert raw.startswith("/ipfs/") and raw.endswith("?format=raw")
    finally:
        context.close()
    origin = server.url.rstrip("/")
    foreign = [u for u in requested if not (u == origin or u.startswith(origin + "/"))]
    assert foreign == [], f"the pages loaded something from another host: {foreign}"
    assert errors == []
