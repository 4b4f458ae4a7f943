"""Leaderboard: trusted results of the same work, ranked per energy method; publishing many; the CLI outputs."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from greenbench import publish, signing
from greenbench.cli import app
from greenbench.leaderboard import build, from_store
from greenbench.leaderboard.fields import MAX_BATCH_SIZE, Malformed, record
from greenbench.store.local import LocalStore

from test_results import minimal_doc

KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i in range(3)]
DIDS = [signing.did_key(k) for k in KEYS]
WORK = "sha256:" + "a" * 64


def doc(jpt=0.25, method="counter", work=WORK, profile_digest="sha256:" + "0" * 64, created="2026-01-01T00:00:00Z",
        **over):
    d = copy.deepcopy(minimal_doc())
    d["metrics"]["decode"]["j_per_token"] = jpt
    d["energy"]["method"] = method
    d["workload"]["digest"] = work
    d["profile"]["digest"] = profile_digest
    d["created"] = created
    for path, value in over.items():
        target = d
        *parts, last = path.split("__")
        for p in parts:
            target = target.setdefault(p, {})
        target[last] = value
    return d


def rec(d, cid, signers=(DIDS[0],)):
    sha = signing.statement_bytes(d, "r.json")[1]
    return dict(record(d, signers=signers, sha256=sha), cid=cid, verdict="ok")


# ----------------------------------------------------------------------------- ranking (pure)


def test_groups_are_the_work_not_the_profile_digest():
    # --repeats changes profile.digest, not workload.digest: one group
    board = build([rec(doc(0.3, profile_digest="sha256:" + "1" * 64), "a"), rec(doc(0.1, profile_digest="sha256:" + "2" * 64), "b"),
                   rec(doc(0.2, work="sha256:" + "b" * 64), "c")], {DIDS[0]})
    by_group = {g: [(r["rank"], r["cid"]) for r in rows] for g, rows in board.groups().items()}
    assert by_group == {WORK: [(1, "b"), (2, "a")], "sha256:" + "b" * 64: [(1, "c")]}


def test_lanes_rank_apart_and_an_estimate_never_outranks_a_measurement():
    board = build([rec(doc(0.5, "counter"), "counter-slow"), rec(doc(0.05, "estimate"), "estimate-10x-lower"),
                   rec(doc(0.4, "counter"), "counter-fast"), rec(doc(0.001, "simulated"), "sim")], {DIDS[0]})
    got = [(r["lane"], r["rank"], r["lane_size"], r["cid"]) for r in board.rows]
    assert got == [("counter", 1, 2, "counter-fast"), ("counter", 2, 2, "counter-slow"),
                   ("estimate", 1, 1, "estimate-10x-lower"), ("simulated", 1, 1, "sim")]


def test_untrusted_results_are_never_ranked():
    forged = rec(doc(1e-15, "counter"), "brand-new-key", signers=(DIDS[2],))
    board = build([rec(doc(0.5), "mine"), forged], {DIDS[0]})
    assert [(r["cid"], r["rank"]) for r in board.rows] == [("mine", 1)]
    assert [(r["cid"], r["rank"], r["trusted"]) for r in board.untrusted] == [("brand-new-key", None, False)]
    assert build([rec(doc(0.5), "mine"), forged], {DIDS[0]}, trusted_only=True).untrusted == []
    nobody = build([forged], frozenset())
    assert nobody.rows == [] and len(nobody.untrusted) == 1


def test_duplicates_are_one_row_with_every_signer():
    d = doc(0.2)
    records = [rec(d, "cid-1", (DIDS[1],)), rec(d, "cid-2", (DIDS[0], DIDS[2])), rec(d, "cid-3", (DIDS[2],))]
    board = build(records, {DIDS[0]})
    (row,) = board.rows
    assert row["signers"] == [DIDS[1], DIDS[0], DIDS[2]] and row["cids"] == ["cid-2", "cid-1", "cid-3"]
    assert row["cid"] == "cid-2" and row["signer"] == DIDS[0] and row["trusted"] and row["rank"] == 1


def test_a_ranked_duplicate_points_at_an_envelope_a_trusted_key_signed(tmp_path):
    d = doc(0.2)
    records = [rec(d, "by-unknown", (DIDS[1],)), rec(d, "by-trusted", (DIDS[0],)), rec(d, "by-both", (DIDS[2], DIDS[0]))]
    row = build(records, {DIDS[0]}).rows[0]
    assert row["cid"] == "by-trusted" and row["cids"] == ["by-trusted", "by-unknown", "by-both"]
    assert row["signer"] == DIDS[0] and row["signers"] == [DIDS[1], DIDS[0], DIDS[2]]
    assert build(records, {DIDS[2]}).rows[0]["cid"] == "by-both"
    assert build(records, {DIDS[1]}).rows[0]["cid"] == "by-unknown"
    assert build(records, set()).untrusted[0]["cid"] == "by-unknown"  # unranked: the first stored
    # the same through a store: the result page of the row says who signed the envelope it links to
    from greenbench.leaderboard.html import ServerLinks, result_page

    cids = []
    for key in (KEYS[1], KEYS[0]):
        env = signing.sign_result(d, key, "r.json")
        cid, block = publish.envelope_block(env)
        store = LocalStore(tmp_path / "st")
        store.put_verified(cid, block)
        store.index_result(cid, publish.index_info(signing.verify_envelope(env)))
        cids.append(str(cid))
    row = from_store(store, {DIDS[0]}).rows[0]
    assert row["cid"] == cids[1] and row["rank"] == 1
    page = result_page(row["cid"], store.get_block(row["cid"]), row, ServerLinks())
    provenance = page[page.index('id="provenance"'):]
    assert DIDS[0] in provenance.split("also stored as")[0] and f"/ipfs/{cids[1]}?format=raw" in page


def test_nulls_partials_and_busy_machines():
    below = doc(None, metrics__decode__below_resolution=True)
    board = build([rec(doc(0.3), "ok"), rec(below, "below"), rec(doc(0.1, partial=True), "partial"),
                   rec(doc(0.2, environment__contention__flagged=True), "busy")], {DIDS[0]})
    got = {r["cid"]: (r["rank"], r["lane_size"], r["below_resolution"], r["flagged"]) for r in board.rows}
    assert got == {"busy": (1, 2, False, True), "ok": (2, 2, False, False), "below": (None, 2, True, False)}
    with_partial = build([rec(doc(0.1, partial=True), "partial"), rec(doc(0.3), "ok")], {DIDS[0]}, include_partial=True)
    assert [(r["cid"], r["rank"]) for r in with_partial.rows] == [("ok", 1), ("partial", None)]


def test_filters_never_change_a_rank():
    records = [rec(doc(0.1, backend="cpu"), "a"), rec(doc(0.2, backend="cuda"), "b"), rec(doc(0.3, backend="cuda"), "c")]
    board = build(records, {DIDS[0]}, filters={"backend": "cuda"})
    assert [(r["cid"], r["rank"]) for r in board.rows] == [("b", 2), ("c", 3)]


def test_malformed_and_unverified_records_are_skipped_with_a_reason():
    board = build([{"cid": "x", "verdict": "malformed: metrics.decode.j_per_token is not a non-negative number"},
                   {"cid": "y", "verdict": "does not verify: damaged"}], {DIDS[0]}, skipped=[{"cid": "z", "reason": "r"}])
    assert [s["cid"] for s in board.skipped] == ["z", "x", "y"] and "malformed" in board.skipped[1]["reason"]


def test_results_without_a_work_digest_group_by_profile():
    d = doc(0.2)
    del d["workload"]["digest"]
    r = record(d, signers=[DIDS[0]], sha256="0" * 64)
    assert r["group"] == "profile:" + d["profile"]["digest"] and r["group_basis"] == "profile"


def test_exports_neutralise_formulas_markup_and_escape_sequences():
    from greenbench.leaderboard.export import to_csv, to_markdown
    from greenbench.leaderboard.html import ServerLinks, View, index_page

    evil = doc(0.2, work="sha256:`x` [l](http://e)|\x1b[2J", backend="@SUM(1+1)", carbon__region="+cmd", energy__total_j=-0.5,
               environment__cpu_model="\t=1", profile__name="=HYPERLINK(\"http://e\")\x1b]0;PWNED\x07")
    board = build([rec(evil, "c1")], {DIDS[0]})
    out = to_csv(board)
    assert "\x1b" not in out and "\x07" not in out
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["profile"] == "'=HYPERLINK(\"http://e\")]0;PWNED" and row["backend"] == "'@SUM(1+1)"
    assert row["region"] == "'+cmd" and row["hardware"] == "'\t=1"
    assert row["energy_j"] == "-0.5" and row["j_per_token"] == "0.2"  # numbers stay numbers
    md = to_markdown(board)
    assert "\x1b" not in md and "\x07" not in md
    assert "## work sha256:\\`x\\` \\[l\\](http://e)\\|\\[2J" in md  # no code span, no link, no broken table
    assert "&#64;SUM(1+1)" in md and "=HYPERLINK" in md
    for line in md.splitlines():
        if line.startswith("| ") and "HYPERLINK" in line:
            assert len(line.replace("\\|", "").split("|")) == 15  # 13 cells: no pipe from the data
    html = index_page(board, View(), ServerLinks(), trust_source="t")
    assert "\x1b" not in html and "\x07" not in html


# ----------------------------------------------------------------------------- the index and publish


def _publish(tmp_path, docs, key=None, name="r"):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i, d in enumerate(docs):
        f = src / f"{name}{i}.json"
        if key is None:
            f.write_text(json.dumps(d))
        else:
            f.with_name(f"{name}{i}.dsse.json").write_text(json.dumps(signing.sign_result(d, key, f.name)))
    return src


def test_publish_many_writes_envelopes_and_indexes_every_ranked_field(tmp_path):
    src = _publish(tmp_path, [doc(0.3), doc(0.1, "estimate"), doc(0.2)])
    (src / "notes.json").write_text('{"not": "a result"}')
    (src / "sub").mkdir()
    (src / "sub" / "x.json").write_text(json.dumps(doc(0.4, backend="cuda")))
    report = publish.publish_paths([src], store_dir=tmp_path / "st")
    assert not report.failed and [s["path"] for s in report.skipped] == [str(src / "notes.json")]
    assert len(report.outcomes) == 4 and report.envelopes_written == 4 and all(o.signed_now for o in report.outcomes)
    for i in range(3):  # each envelope beside its result, as `greenbench sign` writes it
        env = json.loads((src / f"r{i}.dsse.json").read_text())
        assert signing.verify_envelope(env).result == json.loads((src / f"r{i}.json").read_text())
    store = LocalStore(tmp_path / "st")
    mine = signing.did_key(signing.load_key())
    board = from_store(store, {mine})
    assert [(r["lane"], r["rank"], r["j_per_token"]) for r in board.rows] == [
        ("counter", 1, 0.2), ("counter", 2, 0.3), ("counter", 3, 0.4), ("estimate", 1, 0.1)]
    row = board.rows[0]
    assert row["signers"] == [mine] and row["group"] == WORK and row["tokens_per_s"] == 100.0
    assert row["ttft_s"] == 0.01 and row["g_co2e_per_1k_tokens"] == 2e-3 and row["region"] == "FRA"
    # again: the envelopes beside the results are published instead of signing again; nothing is new
    again = publish.publish_paths([src], store_dir=tmp_path / "st")
    assert [o.stored_locally for o in again.outcomes] == [False] * 4 and again.envelopes_written == 0
    assert not any(o.signed_now for o in again.outcomes)


def test_publish_keeps_going_past_bad_files(tmp_path):
    src = _publish(tmp_path, [doc(0.3)])
    (src / "broken.json").write_text("{not json")
    tampered = signing.sign_result(doc(0.2), KEYS[1], "t.json")
    tampered["signatures"][0]["sig"] = tampered["signatures"][0]["sig"][:-4] + "AAA="
    (src / "t.dsse.json").write_text(json.dumps(tampered))
    res = CliRunner().invoke(app, ["publish", str(src), "--store", str(tmp_path / "st")])
    assert res.exit_code == 2 and "Traceback" not in res.output  # bad input among them: exit 2
    assert len(res.stdout.split()) == 1 and "broken.json" in res.stderr and "t.dsse.json" in res.stderr
    assert "2 of 3 file(s) were not published" in res.stderr
    (src / "broken.json").unlink()
    res = CliRunner().invoke(app, ["publish", str(src), "--store", str(tmp_path / "st")])
    assert res.exit_code == 1 and "t.dsse.json: signature 0" in res.stderr  # only a signature that does not verify: exit 1


def test_small_order_keys_never_reach_the_store(tmp_path):
    identity = (1).to_bytes(32, "little")
    payload = signing.statement_bytes(doc(1e-15), "r.json")[0]
    import base64

    env = {"payload": base64.b64encode(payload).decode(), "payloadType": signing.PAYLOAD_TYPE,
           "signatures": [{"keyid": signing.did_key(identity), "sig": base64.b64encode(identity + bytes(32)).decode()}]}
    f = tmp_path / "forged.dsse.json"
    f.write_text(json.dumps(env))
    res = CliRunner().invoke(app, ["publish", str(f), "--store", str(tmp_path / "st")])
    assert res.exit_code == 1 and "small order" in res.stderr
    assert LocalStore(tmp_path / "st").query_results() == []


def test_publish_through_worker_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "PARALLEL_MIN", 4)
    monkeypatch.setattr(publish, "_CHUNK", 3)
    src = _publish(tmp_path, [doc(0.1 * (i + 1)) for i in range(9)])
    report = publish.publish_paths([src], store_dir=tmp_path / "st", workers=2, batch=4)
    assert not report.failed and len(report.outcomes) == 9 and report.envelopes_written == 9
    assert [o.path for o in report.outcomes] == [str(src / f"r{i}.json") for i in range(9)]  # input order kept
    assert len(LocalStore(tmp_path / "st").query_results()) == 9


def test_an_index_made_by_an_older_greenbench_is_extracted_again(tmp_path):
    env = signing.sign_result(doc(0.2), KEYS[0], "r.json")
    store = LocalStore(tmp_path / "st")
    cid, block = publish.envelope_block(env)
    store.put_verified(cid, block)
    legacy = publish.index_info(signing.verify_envelope(env))
    del legacy["board"]
    store.index_result(cid, legacy)  # what greenbench wrote before the leaderboard had its columns
    board = from_store(store, {DIDS[0]})
    assert board.rows == [] and "store reindex" in board.skipped[0]["reason"]
    assert publish.refresh_index(store) == 1
    board = from_store(store, {DIDS[0]})
    assert [r["cid"] for r in board.rows] == [str(cid)] and board.skipped == []


@pytest.mark.parametrize("path,value", [
    ("workload__batch_size", 2**64), ("workload__batch_size", 2**63), ("workload__batch_size", 10**9),
    ("workload__batch_size", "8"), ("workload__batch_size", 1.5), ("metrics__decode__j_per_token", 2**1024),
    ("metrics__decode__tokens_per_s", -(2**2000)), ("metrics__ttft_s", [1]), ("carbon__g_co2e_per_1k_tokens", "1"),
])
def test_out_of_range_and_wrong_type_fields_are_malformed_never_an_exception(path, value):
    with pytest.raises(Malformed):
        record(doc(0.2, **{path: value}), signers=[DIDS[0]], sha256="0" * 64)


def test_one_result_with_a_huge_batch_size_does_not_sink_a_publish(tmp_path):
    big = doc(0.4, workload__batch_size=2**64)  # valid JSON, signs and verifies; an SQLite INTEGER cannot hold it
    src = _publish(tmp_path, [doc(0.5), big, doc(0.3)])
    res = CliRunner().invoke(app, ["publish", str(src), "--store", str(tmp_path / "st")])
    assert res.exit_code == 0 and res.exception is None and "Traceback" not in res.output, res.output
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(tmp_path / "st"), "--json"])
    out = json.loads(res.stdout)
    assert [r["j_per_token"] for r in out["rows"]] == [0.3, 0.5]
    assert [s["reason"] for s in out["skipped"]] == [f"malformed: workload.batch_size is not a count from 0 to {MAX_BATCH_SIZE}"]
    res = CliRunner().invoke(app, ["store", "reindex", "--store", str(tmp_path / "st")])  # from the envelopes again
    assert res.exit_code == 0 and res.exception is None, res.output
    board = from_store(LocalStore(tmp_path / "st"), {signing.did_key(signing.load_key())})
    assert len(board.rows) == 2 and "batch_size" in board.skipped[0]["reason"]


def test_the_index_never_hands_sqlite_an_integer_or_real_it_cannot_hold(tmp_path):
    from greenbench.store.index import BOARD_COLUMNS, Index

    info = {"board": {"fields": 2**70, "batch_size": -(2**64), "j_per_token": 2**1100, "tokens_per_s": "1e999",
                      "verdict": "ok"}, "metrics": {"j_per_token": 2**1100}}
    row, board = Index.result_rows("c", info)
    columns = dict(zip([c for c, _, _ in BOARD_COLUMNS], board))
    assert row[7] is None and [columns[c] for c in ("fields", "batch_size", "j_per_token", "tokens_per_s")] == [None] * 4
    cid = str(publish.envelope_block(signing.sign_result(doc(0.2), KEYS[0], "r.json"))[0])
    LocalStore(tmp_path / "st").index_result(cid, info)  # SQLite takes the row


def test_the_task_is_the_work_without_backend_device_dtype_and_simulated_device():
    from greenbench.workloads.identity import digest

    def ident(backend, dtype="fp32", prompt=(1, 2), **extra):
        return {"kind": "inference", "backend": backend, "dtype": dtype, "prompt_token_ids": list(prompt),
                "max_new_tokens": 8, "batch_size": 1, "model": {"source": "generated", "kind": "synthetic-llama",
                                                                 "config": {"layers": 2, "dtype": dtype}}, **extra}

    same = [ident("cpu"), ident("cuda", "fp16", device="H200"), ident("neuromorphic-sim", sim={"device": "x"})]
    recs = [record(doc(0.1, work=digest(i), workload__identity=i), signers=[DIDS[0]], sha256="0" * 64) for i in same]
    assert len({r["group"] for r in recs}) == 3 and len({r["task"] for r in recs}) == 1 and recs[0]["task"]
    other = record(doc(0.1, workload__identity=ident("cpu", prompt=(3,))), signers=[DIDS[0]], sha256="0" * 64)
    assert other["task"] != recs[0]["task"]
    assert record(doc(0.1), signers=[DIDS[0]], sha256="0" * 64)["task"] is None  # no identity: no task
    assert record(doc(0.1, workload__identity="odd"), signers=[DIDS[0]], sha256="0" * 64)["task"] is None


def test_an_index_without_the_task_column_is_read_and_then_extracted_again(tmp_path):
    import sqlite3

    src = _publish(tmp_path, [doc(0.3, workload__identity={"kind": "inference", "backend": "cpu"})])
    assert not publish.publish_paths([src], store_dir=tmp_path / "st").failed
    path = tmp_path / "st" / "index.sqlite"
    with sqlite3.connect(path) as conn:  # as greenbench made it before the task column (FIELDS_VERSION 1)
        conn.execute("ALTER TABLE board DROP COLUMN task")
        conn.execute("UPDATE board SET fields = 1")
    conn.close()
    store = LocalStore(tmp_path / "st")
    assert from_store(store, {signing.did_key(signing.load_key())}).rows == []  # read: stale, no error
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(tmp_path / "st"), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["task"].startswith("sha256:")


# ----------------------------------------------------------------------------- the command


@pytest.fixture()
def published(tmp_path):
    runner = CliRunner()
    docs = [doc(0.3), doc(0.1, "estimate"), doc(2e-6, "simulated", backend="neuromorphic-sim"),
            doc(0.2, environment__contention__flagged=True)]
    src = _publish(tmp_path, docs)
    res = runner.invoke(app, ["publish", str(src), "--store", str(tmp_path / "st")])
    assert res.exit_code == 0, res.output
    foreign = _publish(tmp_path, [doc(1e-9, "counter")], key=KEYS[2], name="foreign")
    assert runner.invoke(app, ["publish", str(foreign), "--store", str(tmp_path / "st")]).exit_code == 0
    return tmp_path / "st"


def test_cli_json_shape(published):
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(published), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"rows", "untrusted", "skipped"}
    assert [(r["lane"], r["rank"]) for r in out["rows"]] == [("counter", 1), ("counter", 2), ("estimate", 1), ("simulated", 1)]
    for r in out["rows"]:
        assert {"group", "lane", "rank", "method", "signers", "cid", "j_per_token", "tokens_per_s", "ttft_s",
                "g_co2e_per_1k_tokens", "flagged"} <= set(r)
        assert r["group"] == WORK and all(s.startswith("did:key:z6Mk") and len(s) == 56 for s in r["signers"])
    assert [r["flagged"] for r in out["rows"]] == [True, False, False, False]
    assert [(r["j_per_token"], r["rank"], r["signers"]) for r in out["untrusted"]] == [(1e-9, None, [DIDS[2]])]
    trusted_only = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", str(published), "--json", "--trusted-only"]).stdout)
    assert trusted_only["untrusted"] == []


def test_cli_trust_file_ranks_another_signer(published, tmp_path):
    t = tmp_path / "t.txt"
    t.write_text(DIDS[2] + "\n")
    out = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", str(published), "--json", "--trust", str(t)]).stdout)
    assert [(r["j_per_token"], r["rank"]) for r in out["rows"]] == [(1e-9, 1)] and len(out["untrusted"]) == 4


def test_cli_csv_and_markdown(published):
    runner = CliRunner()
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["leaderboard", "--store", str(published), "--csv"]).stdout)))
    assert len(rows) == 5 and rows[0]["lane"] == "counter" and rows[0]["rank"] == "1" and rows[-1]["trusted"] == "False"
    md = runner.invoke(app, ["leaderboard", "--store", str(published), "--markdown"]).stdout
    assert "### measured (energy counter)" in md and "### ESTIMATED (model)" in md and "### SIMULATED" in md
    assert "Signed by unknown keys" in md and DIDS[2] in md and "2 µJ" in md


@pytest.mark.parametrize("columns", ["80", None])
def test_cli_terminal_never_cuts_names_numbers_or_signers(published, monkeypatch, columns):
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)  # piped: 160 columns
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(published)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "neuromorphic-sim" in out and "…" not in out
    assert "300 mJ" in out and "2 µJ" in out and "busy" in out
    for did in (signing.did_key(signing.load_key()), DIDS[2]):  # the legend names each signer whole
        assert any(did in line for line in out.splitlines())
    assert "Signed by unknown keys" in out
    if not columns:
        assert "┃" in out  # wide enough for the table itself when piped


def test_cli_html_site(published, tmp_path):
    site = tmp_path / "site"
    res = CliRunner().invoke(app, ["leaderboard", "--store", str(published), "--html", str(site)])
    assert res.exit_code == 0, res.output
    index = (site / "index.html").read_text()
    assert index.count("<svg") == 2 and "<script" not in index
    results = sorted((site / "result").glob("*.html"))
    assert len(results) == 5
    page = results[0].read_text()
    assert "Energy by meter and domain" in page and "J/token per repeat" in page and "profile.toml" in page
    cid = results[0].stem
    assert (site / "result" / f"{cid}.car").read_bytes()[:1] and (site / "result" / f"{cid}.dag-json").exists()


def test_cli_from_a_server_verifies_locally(tmp_path):
    from greenbench.server.app import ServerConfig, create_app
    from greenbench.server.runner import BackgroundServer

    runner = CliRunner()
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc(0.2)))
    with BackgroundServer(create_app(ServerConfig(store_dir=tmp_path / "server-store"))) as srv:
        res = runner.invoke(app, ["publish", str(f), "--to", srv.url, "--store", str(tmp_path / "local")])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["leaderboard", "--from", srv.url, "--json"])
        assert res.exit_code == 0, res.output
        rows = json.loads(res.stdout)["rows"]
        assert [r["j_per_token"] for r in rows] == [0.2] and rows[0]["signers"] == [signing.did_key(signing.load_key())]
    res = runner.invoke(app, ["leaderboard", "--from", "http://127.0.0.1:9"])  # nothing listens there
    assert res.exit_code == 2 and "--from URL" in res.stderr and "--to" not in res.stderr


def test_bad_options(published):
    runner = CliRunner()
    res = runner.invoke(app, ["leaderboard", "--store", str(published), "--method", "watts"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["leaderboard", "--store", str(published), "--json", "--csv"])
    assert res.exit_code == 2


def test_store_verify_rechecks_signatures_of_results_stored_before_strict_checks(tmp_path):
    """A store filled by an older greenbench may hold the identity-key forgery: `store verify` finds it, and
    the leaderboard (extracting the old rows again) skips it."""
    import base64

    identity = (1).to_bytes(32, "little")
    payload = signing.statement_bytes(doc(1e-15), "r.json")[0]
    forged = {"payload": base64.b64encode(payload).decode(), "payloadType": signing.PAYLOAD_TYPE,
              "signatures": [{"keyid": signing.did_key(identity), "sig": base64.b64encode(identity + bytes(32)).decode()}]}
    store = LocalStore(tmp_path / "st")
    cid, block = publish.envelope_block(forged)
    store.put_verified(cid, block)
    store.index_result(cid, {"signer": signing.did_key(identity), "profile": "t"})  # as an older greenbench did
    runner = CliRunner()
    res = runner.invoke(app, ["store", "verify", "--store", str(tmp_path / "st"), "--json"])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["results_checked"] == 1 and out["results_bad"][0]["cid"] == str(cid)
    assert "small order" in out["results_bad"][0]["reason"]
    res = runner.invoke(app, ["leaderboard", "--store", str(tmp_path / "st"), "--json"])
    lb = json.loads(res.stdout)
    assert lb["rows"] == [] and lb["untrusted"] == [] and "small order" in lb["skipped"][0]["reason"]


@pytest.mark.parametrize("seed", range(6))
def test_the_index_path_and_the_json_writer_agree_with_the_records(tmp_path, seed):
    """The same results ranked from record dicts (as `--from URL` does), from the store's index rows, and
    written as JSON straight from the index (`leaderboard --json`): one board, duplicates, partial results,
    rows without a value, several signers, filters and trusted_only included."""
    import random

    from greenbench.leaderboard.fields import FIELDS_VERSION, static_json
    from greenbench.leaderboard import query
    from greenbench.leaderboard.query import board_json

    rng = random.Random(seed)
    store = LocalStore(tmp_path / "st")
    items, docs = [], []
    for i in range(120):
        clean = seed >= 3  # one envelope per result, one signer each: leaderboard.query's SQLite-sorted path
        if docs and rng.random() < 0.15 and not clean:
            d = rng.choice(docs)  # the same result again, maybe by other signers
        else:
            d = doc(rng.choice([None, 0.5, rng.random()]), rng.choice(["counter", "estimate", "simulated"]),
                    work=rng.choice(["sha256:" + c * 64 for c in "abc"]), backend=rng.choice(["cpu", "cuda"]),
                    created=rng.choice([f"2026-01-{1 + i % 28:02d}T00:00:00Z", None]), partial=rng.random() < 0.1,
                    environment__os=f"os {i}")  # no two alike by chance
            if rng.random() < 0.7:  # a task, shared across backends (the "J/token by backend" chart)
                d["workload"]["identity"] = {"kind": "inference", "backend": d["backend"],
                                             "prompt_token_ids": [rng.randint(1, 2)]}
            docs.append(d)
        signers = rng.sample(DIDS, 1 if clean else rng.randint(1, 3))
        board = record(d, signers=signers, sha256=signing.statement_bytes(d, "r.json")[1])
        board.update(static=static_json(board), verdict="ok" if rng.random() > 0.05 else "malformed: x",
                     fields=FIELDS_VERSION)
        items.append((f"bafy{seed}x{i:04d}", {"board": board}))
    boards = [(cid, info["board"]) for cid, info in items]
    store.index.index_results(items)  # index rows only: the board is a query, no block is read
    for trust in ({DIDS[0]}, {DIDS[1], DIDS[2]}, set()):
        for options in ({}, {"trusted_only": True}, {"include_partial": True}, {"filters": {"backend": "cuda"}},
                        {"filters": {"signer": DIDS[2], "method": "counter"}}):
            ref = build([dict(b, cid=c) for c, b in boards], trust, **options).to_json()
            assert from_store(store, trust, **options).to_json() == ref, (trust, options)
            assert json.loads(board_json(store, trust, **options)) == json.loads(json.dumps(ref)), (trust, options)
    fast = query._sorted_by_sqlite(store, {DIDS[0]}, False, False)
    assert (fast is not None) == (seed >= 3)
