"""Leaderboard: only verified results, ranked within a profile configuration, methods shown."""

import copy
import json

from typer.testing import CliRunner

from greenbench.cli import app
from greenbench.leaderboard import build_rows, render_html

from test_results import minimal_doc


def entry(jpt, method="counter", profile="t", digest="sha256:" + "0" * 64, partial=False, cid="bafy", signer="did:key:z6Mk1"):
    d = copy.deepcopy(minimal_doc())
    d["metrics"]["decode"]["j_per_token"] = jpt
    d["energy"]["method"] = method
    d["profile"] = {"name": profile, "digest": digest}
    d["partial"] = partial
    return {"result": d, "cid": cid, "signer": signer}


def test_rank_within_group_lower_first():
    rows = build_rows([entry(0.3, cid="a"), entry(0.1, cid="b"), entry(0.2, cid="c"),
                       entry(0.05, digest="sha256:" + "1" * 64, cid="d")])
    by_group = {}
    for r in rows:
        by_group.setdefault(r["group"], []).append((r["rank"], r["cid"]))
    assert sorted(by_group.values()) == [[(1, "b"), (2, "c"), (3, "a")], [(1, "d")]]


def test_filters_and_partial():
    entries = [entry(0.1, method="estimate", cid="e"), entry(0.2, cid="c"), entry(0.01, partial=True, cid="p")]
    assert [r["cid"] for r in build_rows(entries)] == ["e", "c"]
    assert [r["cid"] for r in build_rows(entries, method="counter")] == ["c"]
    assert {r["cid"] for r in build_rows(entries, include_partial=True)} == {"e", "c", "p"}
    assert build_rows(entries, profile="other") == []


def test_html_escapes_everything():
    page = render_html(build_rows([entry(0.1, profile="<script>x</script>", signer="<b>")]))
    assert "<script>x" not in page and "&lt;script&gt;" in page
    assert "title=\"&lt;b&gt;\"" in page


def test_cli_ranks_published_results(tmp_path):
    runner = CliRunner()
    store = tmp_path / "store"
    for i, jpt in enumerate([0.3, 0.1]):
        d = copy.deepcopy(minimal_doc())
        d["metrics"]["decode"]["j_per_token"] = jpt
        d["created"] = f"2026-01-0{i + 1}"
        f = tmp_path / f"r{i}.json"
        f.write_text(json.dumps(d))
        res = runner.invoke(app, ["publish", str(f), "--store", str(store)])
        assert res.exit_code == 0, res.output
    html = tmp_path / "lb.html"
    res = runner.invoke(app, ["leaderboard", "--store", str(store), "--json", "--html", str(html)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert [r["j_per_token"] for r in rows] == [0.1, 0.3] and [r["rank"] for r in rows] == [1, 2]
    assert all(r["signer"].startswith("did:key:z6Mk") for r in rows)
    assert "J/token" in html.read_text()
    res = runner.invoke(app, ["leaderboard", "--store", str(store), "--method", "watts"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_cli_reads_a_server_and_verifies_locally(tmp_path):
    from greenbench.server.app import ServerConfig, create_app
    from greenbench.server.runner import BackgroundServer

    runner = CliRunner()
    server_store = tmp_path / "server-store"
    d = copy.deepcopy(minimal_doc())
    f = tmp_path / "r.json"
    f.write_text(json.dumps(d))
    with BackgroundServer(create_app(ServerConfig(store_dir=server_store))) as srv:
        res = runner.invoke(app, ["publish", str(f), "--to", srv.url, "--store", str(tmp_path / "local")])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["leaderboard", "--from", srv.url, "--json"])
        assert res.exit_code == 0, res.output
        rows = json.loads(res.stdout)["rows"]
        assert len(rows) == 1 and rows[0]["j_per_token"] == d["metrics"]["decode"]["j_per_token"]
        assert rows[0]["signer"].startswith("did:key:z6Mk")
