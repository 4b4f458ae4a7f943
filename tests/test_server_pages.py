"""The web pages: the leaderboard at /, result pages, the JSON API; rendered once per index state, escaped."""

from __future__ import annotations

import copy
import gzip
import json
import re

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from greenbench import signing
from greenbench.publish import store_envelope
from greenbench.server import pages
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store.local import LocalStore
from greenbench.trust import Trust

from test_results import minimal_doc

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
TRUST = Trust(frozenset({signing.did_key(KEY)}), "test trust")
WORK = "sha256:" + "ab" * 32


def publish(store, j_per_token: float, name: str = "p", key=KEY, **over) -> str:
    doc = copy.deepcopy(minimal_doc())
    doc["profile"]["name"] = name
    doc["workload"]["digest"] = WORK
    doc["metrics"]["decode"]["j_per_token"] = j_per_token
    doc["metrics"]["decode"]["j_per_token_samples"] = [j_per_token * 0.9, j_per_token, j_per_token * 1.1]
    doc.update(over)
    env = signing.sign_result(doc, key, "r.json")
    cid, _ = store_envelope(env, signing.verify_envelope(env), store)
    return str(cid)


@pytest.fixture()
def site(tmp_path):
    store = LocalStore(tmp_path / "store")
    client = TestClient(create_app(ServerConfig(store=store, board_trust=TRUST)))
    client.store = store
    return client


def test_rendered_once_per_index_state(site, monkeypatch):
    publish(site.store, 0.5)
    calls = []
    real = pages.render
    monkeypatch.setattr(pages, "render", lambda *a: calls.append(a[3:]) or real(*a))
    first = site.get("/api/v1/leaderboard").json()
    assert [r["j_per_token"] for r in first["rows"]] == [0.5]
    assert site.get("/api/v1/leaderboard").json() == first and len(calls) == 1  # shared
    site.get("/api/v1/leaderboard?method=estimate")
    site.get("/")
    assert len(calls) == 3  # another filter, another page: rendered once each
    publish(site.store, 0.25)  # the result index changed: rendered afresh
    rows = site.get("/api/v1/leaderboard").json()["rows"]
    assert [r["j_per_token"] for r in rows] == [0.25, 0.5] and len(calls) == 4


def test_old_renderings_are_made_again(site, monkeypatch):
    publish(site.store, 0.5)
    site.get("/api/v1/leaderboard")
    monkeypatch.setattr(pages, "MAX_AGE_S", 0.0)
    calls = []
    real = pages.render
    monkeypatch.setattr(pages, "render", lambda *a: calls.append(1) or real(*a))
    site.get("/api/v1/leaderboard")
    assert calls == [1]


def test_gzip_when_asked(site):
    publish(site.store, 0.5)
    plain = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    raw = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "br, gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.json() == plain.json()  # decoded by the client
    refused = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    html = site.get("/", headers={"Accept-Encoding": "gzip"})
    assert html.headers["content-type"].startswith("text/html") and "J/token" in html.text
    csp = html.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_json_api_shape_and_pages(site):
    for i in range(5):
        publish(site.store, 0.1 * (i + 1))
    publish(site.store, 0.01, key=OTHER)
    body = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "identity"}).content
    doc = json.loads(body)
    assert body == json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert set(doc) == {"rows", "untrusted", "skipped"} and len(doc["rows"]) == 5 and len(doc["untrusted"]) == 1
    page = site.get("/api/v1/leaderboard?limit=2&offset=2&sort=-j_per_token").json()
    assert [r["rank"] for r in page["rows"]] == [3, 2] and page["total"] == 5
    assert site.get("/api/v1/leaderboard?trusted_only=1").json()["untrusted"] == []
    assert site.get("/api/v1/leaderboard?sort=colour").status_code == 400
    assert site.get("/api/v1/leaderboard?limit=lots").status_code == 400


def test_index_sorts_filters_and_pages_without_javascript(site, monkeypatch):
    from greenbench.leaderboard import html as lb_html

    monkeypatch.setattr(lb_html, "PAGE_SIZE", 2)
    for i in range(5):
        publish(site.store, 0.1 * (i + 1), name=f"p{i}", backend="cuda" if i % 2 else "cpu")
    page = site.get("/").text
    assert "<script" not in page and page.count("<svg") == 2 and "Rows 1–2 of 5" in page
    assert 'href="/?page=2"' in page and 'href="/?sort=-rank"' in page
    second = site.get("/?page=2").text
    assert "Rows 3–4 of 5" in second and ">p2</a>" in second
    by_speed = site.get("/?sort=-j_per_token").text
    assert by_speed.index(">p4</a>") < by_speed.index(">p3</a>")
    cuda = site.get("/?backend=cuda").text
    assert "Rows 1–2 of 2" in cuda and ">p1</a>" in cuda and ">p0</a>" not in cuda
    assert '<option value="cuda" selected>' in cuda
    assert site.get("/?page=0").status_code == 400 and site.get("/?sort=evil").status_code == 400


def test_result_page_and_profile(site):
    cid = publish(site.store, 0.5)
    page = site.get(f"/result/{cid}")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    for part in ("Energy by meter and domain", "J/token per repeat", "Carbon", "Provenance", signing.did_key(KEY),
                 f"/ipfs/{cid}?format=raw", f"/ipfs/{cid}?format=car", f"/result/{cid}/profile.toml"):
        assert part in text
    assert "#1 of 1" in text and text.count("<svg") == 1
    assert "does not carry its resolved profile" in site.get(f"/result/{cid}/profile.toml").text
    resolved = {"name": "p", "description": 'say "hi"', "model": {"kind": "synthetic-llama", "layers": 2, "seed": None},
                "prompt": {"token_ids": [5, 17, 42]}, "run": {"repeats": 5, "backend": "cpu", "idle_s": 0.5}}
    cid = publish(site.store, 0.4, profile={"name": "p", "digest": "sha256:" + "1" * 64, "resolved": resolved})
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    again = tomllib.loads(site.get(f"/result/{cid}/profile.toml").text)
    assert again == {**resolved, "model": {"kind": "synthetic-llama", "layers": 2}}  # None: not set
    assert site.get("/result/bafkqaaa").status_code == 404
    assert site.get("/result/not-a-cid").status_code == 400


EVIL = "<script>alert(1)</script>"


def test_every_user_supplied_field_is_escaped(site):
    doc = copy.deepcopy(minimal_doc())
    doc.update({"backend": EVIL, "created": EVIL, "partial_reason": EVIL, "warnings": [EVIL]})
    doc["profile"] = {"name": EVIL, "digest": EVIL, "resolved": {"name": EVIL, "run": {"backend": EVIL}}}
    doc["workload"]["digest"] = EVIL
    doc["environment"].update({"cpu_model": EVIL, "gpu_models": [EVIL], "os": EVIL, "python": EVIL,
                               "greenbench_version": EVIL, "libraries": {EVIL: EVIL}})
    doc["carbon"].update({"region": EVIL, "region_name": EVIL})
    doc["energy"]["meters"] = [{"name": EVIL, "domain": EVIL, "method": EVIL, "basis": EVIL, "joules": 1.0}]
    doc["energy"]["scope"] = {"described": EVIL}
    env = signing.sign_result(doc, KEY, "r.json")
    cid, _ = store_envelope(env, signing.verify_envelope(env), site.store)
    for url in ("/", f"/?group={EVIL}", f"/result/{cid}", f"/?profile={EVIL}&sort=-created", f"/?view=untrusted"):
        body = site.get(url).text
        assert EVIL not in body and "<script" not in body, url
    assert "&lt;script&gt;" in site.get(f"/result/{cid}").text
    md = pages.render  # the Markdown export too
    from greenbench.leaderboard import from_store
    from greenbench.leaderboard.export import to_markdown

    assert "<script" not in to_markdown(from_store(site.store, TRUST))
    assert md is pages.render


def test_worker_process_renders_the_same(tmp_path):
    store = LocalStore(tmp_path / "store")
    publish(store, 0.5)
    publish(store, 0.75, name="q")
    app = create_app(ServerConfig(store=store, worker_process=True, board_trust=TRUST))
    try:
        with BackgroundServer(app) as srv:
            r = httpx.get(f"{srv.url}/api/v1/leaderboard", timeout=120)
            assert r.status_code == 200 and [row["profile"] for row in r.json()["rows"]] == ["p", "q"]
            assert app.state.ctx._pool is not None  # it did go through the worker process
            page = httpx.get(f"{srv.url}/?sort=-j_per_token", timeout=120)
            assert page.status_code == 200 and re.search(r">q</a>.*>p</a>", page.text, re.S)
    finally:
        app.state.ctx.drop_worker_pool()
    status, media, body, zipped = pages.render(str(store.root), TRUST, store.result_state(), "json", ())
    assert status == 200 and json.loads(body) == r.json() and gzip.decompress(zipped) == body


def test_a_large_board_is_ranked_as_the_server_starts(tmp_path, monkeypatch):
    import asyncio

    store = LocalStore(tmp_path / "store")
    publish(store, 0.5)
    rendered = []

    async def run(ctx, args):  # what the worker process would do
        rendered.append(args[3:])
        return pages.render(*args)

    monkeypatch.setattr(pages, "_run", run)
    small = create_app(ServerConfig(store=store, worker_process=True, board_trust=TRUST)).state.ctx
    asyncio.run(pages.warm(small))
    assert rendered == []  # below WARM_FROM: no worker started for nothing
    monkeypatch.setattr(pages, "WARM_FROM", 1)
    asyncio.run(pages.warm(create_app(ServerConfig(store=store, board_trust=TRUST)).state.ctx))
    assert rendered == []  # no worker process (tests, embedded apps): nothing rendered ahead
    ctx = create_app(ServerConfig(store=store, worker_process=True, board_trust=TRUST)).state.ctx
    asyncio.run(pages.warm(ctx))
    assert rendered == [("index", ())]
    hit = ctx.cache["pages"][("index", ())]  # the first visitor of / gets this one
    assert hit["state"] == store.result_state() and hit["task"].result()[0] == 200


def test_pages_of_an_empty_store_and_of_unknown_signers_only(site):
    assert "No results here yet" in site.get("/").text
    assert site.get("/api/v1/leaderboard").json() == {"rows": [], "untrusted": [], "skipped": []}
    publish(site.store, 0.5, key=OTHER)
    page = site.get("/?sort=-tokens_per_s")
    assert page.status_code == 200 and "listed apart" in page.text
    assert len(site.get("/api/v1/leaderboard").json()["untrusted"]) == 1
    assert site.get("/?view=untrusted&sort=j_per_token").status_code == 200


def test_charts_are_kept_for_groups_that_exist_only(site):
    publish(site.store, 0.5)
    for i in range(100):
        assert site.get(f"/?group=sha256:{i:064x}").status_code == 200
    assert site.get(f"/?group={WORK}").status_code == 200
    kept = pages._BOARD["charts"]
    assert set(kept) <= {None, WORK} and WORK in kept


def test_json_pages_page_the_untrusted_list_too(site):
    for j in (0.1, 0.2, 0.3):
        publish(site.store, j, key=OTHER)
    page = site.get("/api/v1/leaderboard?limit=1&offset=1").json()
    assert page["untrusted_total"] == 3 and page["total"] == 0 and len(page["untrusted"]) == 1
    assert page["untrusted"][0]["cid"] == site.get("/api/v1/leaderboard").json()["untrusted"][1]["cid"]


def test_serve_follows_edits_of_the_trust_file(tmp_path, monkeypatch):
    import time as _time

    from greenbench import trust as trust_policy

    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    store = LocalStore(tmp_path / "store")
    publish(store, 0.5, key=OTHER)
    now = [100.0]
    monkeypatch.setattr(_time, "monotonic", lambda: now[0])
    app = create_app(ServerConfig(store=store, trust_from=trust_policy.resolve))
    client = TestClient(app)
    assert client.get("/api/v1/leaderboard").json()["rows"] == []  # OTHER is nobody's trusted key yet
    trust_policy.add(signing.did_key(OTHER))
    now[0] += 2  # the policy is read again at most once a second
    rows = client.get("/api/v1/leaderboard").json()["rows"]
    assert [r["signers"] for r in rows] == [[signing.did_key(OTHER)]]
    trust_policy.remove(signing.did_key(OTHER))
    now[0] += 2
    assert client.get("/api/v1/leaderboard").json()["rows"] == []


# ----------------------------------------------------------------------------- documents of any shape


def _rich_doc() -> dict:
    """A result with every part the result page reads."""
    doc = copy.deepcopy(minimal_doc())
    doc["workload"]["digest"] = WORK
    doc["profile"]["resolved"] = {"name": "t", "model": {"kind": "synthetic-llama", "layers": 2},
                                  "run": {"repeats": 3, "backend": "cpu"}}
    doc["metrics"]["decode"].update({"j_per_token_iqr": 0.01, "duration_s": 1.0, "window_s": 1.2, "inner_repeats": 2,
                                     "below_resolution": False, "energy_j": 1.0})
    doc["energy"].update({"total_j": 1.0, "marginal_j": 0.5, "scope": {"described": "the CPU package"}})
    doc["carbon"].update({"region_name": "France", "pue": 1.2})
    doc["environment"].update({"gpu_models": ["G"], "os": "Linux", "python": "3.11", "cpu_count_physical": 4,
                               "libraries": {"torch": "2.13.0"},
                               "contention": {"other_cpu_fraction": 0.1, "flagged": False}})
    doc["warnings"] = ["w"]
    doc["partial"], doc["partial_reason"] = False, None
    return doc


def _odd(kind: str) -> dict:
    doc = _rich_doc()
    if kind == "profile-string":
        doc["profile"] = "just-a-string"
    elif kind == "window-string":
        doc["metrics"]["decode"]["window_s"] = "x"
    elif kind == "contention-string":
        doc["environment"]["contention"] = {"other_cpu_fraction": "lots"}
    elif kind == "samples-int":
        doc["metrics"]["decode"]["j_per_token_samples"] = 5
    return doc


@pytest.mark.parametrize("kind", ["profile-string", "window-string", "contention-string", "samples-int"])
def test_a_validly_signed_result_with_an_odd_field_has_a_page(site, kind):
    env = signing.sign_result(_odd(kind), OTHER, "r.json")  # any key's valid signature is stored and listed
    cid, _ = store_envelope(env, signing.verify_envelope(env), site.store)
    page = site.get(f"/result/{cid}")
    assert page.status_code == 200 and "Provenance" in page.text
    assert site.get(f"/result/{cid}/profile.toml").status_code == 200
    assert site.get("/?view=untrusted").status_code == 200
    if kind == "window-string":
        assert ">x<" not in page.text  # a string where a number belongs is shown as absent


def _paths(node, prefix=()):
    """Every path of a document (objects and lists, and their leaves)."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _replaced(doc, path, value):
    doc = copy.deepcopy(doc)
    target = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return doc


def test_every_field_of_any_type_renders_the_result_page_and_the_static_site(tmp_path):
    from typer.testing import CliRunner

    from greenbench.cli import app
    from greenbench.leaderboard.html import ServerLinks, profile_toml, result_page
    from greenbench.publish import envelope_block

    base = _rich_doc()
    odd_values = ["<odd>\x1b[2J", [1, "x", None], None, 2**64, {"k": []}, -1.5e308, True]
    store = LocalStore(tmp_path / "store")
    n = 0
    for path in list(_paths(base))[1:]:
        for value in odd_values:
            doc = _replaced(base, path, value)
            env = signing.sign_result(doc, KEY, "r.json")
            cid, block = envelope_block(env)
            html = result_page(str(cid), block, None, ServerLinks())  # raises on a shape it cannot show
            assert "\x1b" not in html and "<odd>" not in html, path
            assert "\x1b" not in profile_toml(doc)
            if n % 7 == 0:  # a sample of them in one store, for the static site
                store_envelope(env, signing.verify_envelope(env), store)
            n += 1
    assert n > 300
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(store.root), "--html", str(tmp_path / "site")])
    assert res.exit_code == 0 and res.exception is None, res.output


@pytest.mark.parametrize("sort", ["j_per_token", "-j_per_token", "tokens_per_s", "-created", "profile", "method"])
def test_sorted_views_keep_the_lanes_apart(site, sort):
    for j, method in [(0.5, "counter"), (0.001, "simulated"), (0.4, "counter"), (0.05, "estimate")]:
        publish(site.store, j, name=f"{method}-{j}", energy={"method": method})
    page = site.get(f"/?sort={sort}").text
    assert re.findall(r'class="row lane-row-(\w+)"', page) == ["counter", "counter", "estimate", "simulated"]
    assert re.findall(r'lane-head lane-head-(\w+)', page) == ["counter", "estimate", "simulated"]
    if sort == "j_per_token":
        assert re.findall(r'class="result-link">([^<]+)<', page) == ["counter-0.4", "counter-0.5", "estimate-0.05",
                                                                      "simulated-0.001"]
    from greenbench.leaderboard import from_store
    from greenbench.leaderboard.html import Orders, ordered_rows, parse_view

    board = from_store(site.store, TRUST)
    view = parse_view({"sort": sort})
    assert [r["cid"] for r in Orders(board).rows(view)] == [r["cid"] for r in ordered_rows(board, view)]


def test_static_site_links_only_pages_it_wrote_and_carries_the_csp(tmp_path):
    from greenbench.leaderboard import from_store
    from html import unescape

    from greenbench.leaderboard.html import CSP, META_CSP, write_site

    store = LocalStore(tmp_path / "store")
    publish(store, 0.5)
    other = copy.deepcopy(minimal_doc())
    other["workload"]["digest"] = "sha256:" + "cd" * 32  # work only an unknown key did
    env = signing.sign_result(other, OTHER, "o.json")
    store_envelope(env, signing.verify_envelope(env), store)
    site = tmp_path / "site"
    write_site(from_store(store, TRUST), site, store.get_block, trust_source="t")
    pages_written = sorted(site.rglob("*.html"))
    assert len(pages_written) == 5  # index, two groups, two results
    for page in pages_written:
        html = page.read_text()
        metas = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
        assert [unescape(m) for m in metas] == [META_CSP], page
        for href in re.findall(r'href="(?!data:)([^"#?]+)"', html):
            assert (page.parent / href).exists(), (page, href)
    unknown = (site / f"group-sha256-{'cd' * 32}.html").read_text()
    assert "Signed by unknown keys" in unknown and 'lane-row-' in unknown
    assert META_CSP == CSP.replace("; frame-ancestors 'none'", "")  # the server's policy, as a meta element can carry it


def test_profile_toml_quotes_any_key_and_round_trips():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from greenbench.leaderboard.html import profile_toml

    odd = ["a key", "new\nline", 'say "hi"', "back\\slash", "", "dotted.key", "ünï", "tab\tdel\x7f", "=", "[x]"]
    resolved = {**{k: f"v {k}\x1b\x7f" for k in odd}, "n": 3, "f": 0.25, "b": True, "l": [1, "2"],
                **{k: {k: 1, "ok": [0.5]} for k in odd}}
    doc = {"profile": {"name": "n\n[evil]\nx = 1", "digest": "d", "resolved": resolved}}
    text = profile_toml(doc)
    assert tomllib.loads(text) == resolved  # the name's newline stays in the comment
    dropped = dict(resolved, none=None, big=2**64, nested={"deeper": {"x": 1}, "kept": 1})
    again = tomllib.loads(profile_toml({"profile": {"resolved": dropped}}))
    assert again == {**resolved, "nested": {"kept": 1}}
    assert "left out" in profile_toml({"profile": {"resolved": dropped}})
