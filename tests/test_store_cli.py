"""`greenbench store ...` through the real Typer app: exit codes, stdout contents, nothing half-done."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenbench.cli import app
from greenbench.store import dagpb, unixfs
from greenbench.store.cid import cid_for
from greenbench.store.local import CHUNK_SIZE, LocalStore

MiB = 1 << 20

DATA = Path(__file__).parent / "data"
BASIC = DATA / "ipld-car-spec" / "carv1-basic.car"

# Reuse the malformed-CAR table of the CAR tests: every class must exit 2 and import nothing.
from test_store_car import MALFORMED  # noqa: E402


def flat(result) -> str:
    """Stderr with rich's line wrapping undone."""
    return " ".join((result.stderr or "").split())


def run(*args, input=None):
    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in (result.stderr or ""), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_put_get_round_trip_binary_safe(tmp_path):
    store = tmp_path / "s"
    data = bytes(range(256)) * 4 + b"\r\n\x00\xff"
    (tmp_path / "f").write_bytes(data)
    put = run("store", "put", tmp_path / "f", "--store", store)
    assert put.exit_code == 0
    cid = put.stdout.strip()
    assert cid == str(cid_for(data))
    got = run("store", "get", cid, "--store", store)
    assert got.exit_code == 0 and got.stdout_bytes == data


def test_put_chunked_and_get_reassembles(tmp_path):
    store = tmp_path / "s"
    data = os.urandom(CHUNK_SIZE * 2 + 11)
    (tmp_path / "big").write_bytes(data)
    cid = run("store", "put", tmp_path / "big", "--store", store).stdout.strip()
    assert cid == str(unixfs.build_file(data)[0]) and cid.startswith("bafybei")  # a UnixFS (dag-pb) root
    assert run("store", "get", cid, "--store", store).stdout_bytes == data
    root = run("store", "get", cid, "--block", "--store", store).stdout_bytes
    assert unixfs.decode_data(dagpb.decode(root).data).filesize == len(data)
    assert run("store", "pin", "ls", "--store", store).stdout.split() == [cid, "recursive"]  # pinned, as ipfs add does


@pytest.mark.parametrize("from_stdin", [False, True])
def test_put_of_a_large_input_shows_progress_on_stderr_only(tmp_path, monkeypatch, from_stdin):
    from greenbench.cli import store as store_cli

    monkeypatch.setattr(store_cli, "PROGRESS_MIN_BYTES", 2 * MiB)  # "large", without writing 256 MiB
    data = os.urandom(3 * MiB + 5)
    (tmp_path / "big").write_bytes(data)
    if from_stdin:
        put = run("store", "put", "-", "--store", tmp_path / "s", input=data)
    else:
        put = run("store", "put", tmp_path / "big", "--store", tmp_path / "s")
    assert put.exit_code == 0
    assert "storing" in put.stderr and ("4/4" in put.stderr or from_stdin)  # MiB done / total (stdin: unknown total)
    cid = put.stdout.strip()  # stdout is the CID alone
    assert run("store", "get", cid, "--store", tmp_path / "s").stdout_bytes == data
    small = run("store", "put", tmp_path / "big", "--store", tmp_path / "s2")
    assert small.exit_code == 0 and (from_stdin or "storing" in small.stderr)
    monkeypatch.setattr(store_cli, "PROGRESS_MIN_BYTES", 256 << 20)
    quiet = run("store", "put", tmp_path / "big", "--store", tmp_path / "s3")
    assert quiet.stderr == "" and quiet.stdout.strip() == cid  # below the threshold: no bar


def test_put_file_reports_progress_in_order(tmp_path):
    data = os.urandom(3 * MiB + 5)
    (tmp_path / "big").write_bytes(data)
    seen = []
    LocalStore(tmp_path / "s").put_file(tmp_path / "big", lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == len(data) and all(d % MiB == 0 for d in done[:-1])
    assert {total for _, total in seen} == {len(data)}


def test_put_from_stdin_and_env_store(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_STORE", str(tmp_path / "envstore"))
    put = run("store", "put", "-", input=b"from stdin")
    assert put.exit_code == 0 and put.stdout.strip() == str(cid_for(b"from stdin"))
    assert LocalStore(tmp_path / "envstore").has(put.stdout.strip())


@pytest.mark.parametrize("bad", ["../../etc/passwd", "bafy/../x", "notacid", ""])
def test_get_rejects_bad_cids(tmp_path, bad):
    result = run("store", "get", bad, "--store", tmp_path / "s")
    assert result.exit_code == 2 and "bad CID" in flat(result) and result.stdout_bytes == b""


def test_get_unknown_and_corrupted(tmp_path):
    store = tmp_path / "s"
    missing = run("store", "get", str(cid_for(b"nope")), "--store", store)
    assert missing.exit_code == 2 and "not in the store" in flat(missing)
    st = LocalStore(store)
    cid = st.put_block(b"good bytes")
    st.block_path(cid).write_bytes(b"evil bytes")
    corrupted = run("store", "get", str(cid), "--store", store)
    assert corrupted.exit_code == 1 and corrupted.stdout_bytes == b"" and "damaged" in flat(corrupted)


def test_put_missing_file(tmp_path):
    result = run("store", "put", tmp_path / "nope", "--store", tmp_path / "s")
    assert result.exit_code == 2 and "cannot read" in flat(result)


def test_car_inspect_table_and_json():
    table = run("store", "car", "inspect", BASIC)
    assert table.exit_code == 0 and "dag-pb: 3" in table.stdout and "yes, every block" in table.stdout
    js = run("store", "car", "inspect", BASIC, "--json")
    doc = json.loads(js.stdout)
    assert doc["blocks"] == 8 and doc["verified"] is True and doc["version"] == 1
    assert doc["codecs"] == {"dag-cbor": 2, "dag-pb": 3, "raw": 3} and doc["multihashes"] == {"sha2-256": 8}


def _tampered(tmp_path) -> Path:
    raw = bytearray(BASIC.read_bytes())
    raw[-1] ^= 0x01  # the last block's last byte
    path = tmp_path / "tampered.car"
    path.write_bytes(bytes(raw))
    return path


def test_car_inspect_reports_bad_block_exit_1(tmp_path):
    result = run("store", "car", "inspect", _tampered(tmp_path), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verified"] is False
    assert "do not match" in flat(result)


def test_car_import_tampered_exit_1_nothing_imported(tmp_path):
    store = tmp_path / "s"
    result = run("store", "car", "import", _tampered(tmp_path), "--store", store)
    assert result.exit_code == 1 and "nothing imported" in flat(result)
    assert list(LocalStore(store).iter_cids()) == []


@pytest.mark.parametrize("name", list(MALFORMED))
def test_car_import_malformed_exit_2_nothing_imported(tmp_path, name):
    raw, fragment = MALFORMED[name]
    path = tmp_path / "bad.car"
    path.write_bytes(raw)
    store = tmp_path / "s"
    result = run("store", "car", "import", path, "--store", store)
    assert result.exit_code == 2, result.stderr
    assert "error:" in flat(result)
    assert list(LocalStore(store).iter_cids()) == []
    inspect = run("store", "car", "inspect", path)
    assert inspect.exit_code == 2 and inspect.stdout == ""


def test_truncated_after_good_blocks_imports_nothing(tmp_path):
    raw = BASIC.read_bytes()
    path = tmp_path / "cut.car"
    path.write_bytes(raw[:-3])
    store = tmp_path / "s"
    result = run("store", "car", "import", path, "--store", store)
    assert result.exit_code == 2 and "truncated section" in flat(result)
    assert list(LocalStore(store).iter_cids()) == []


def test_car_import_export_round_trip(tmp_path):
    store = tmp_path / "s"
    imp = run("store", "car", "import", BASIC, "--store", store)
    roots = imp.stdout.split()
    assert imp.exit_code == 0 and len(roots) == 2 and "imported 8 block(s)" in flat(imp)
    out = tmp_path / "out.car"
    exp = run("store", "car", "export", *roots, "-o", out, "--store", store)
    assert exp.exit_code == 0 and out.read_bytes() == BASIC.read_bytes()
    js = run("store", "car", "import", out, "--store", store, "--json")
    assert json.loads(js.stdout) == {"blocks": 8, "new_blocks": 0, "roots": roots}


def test_car_export_missing_root_exit_2(tmp_path):
    out = tmp_path / "o.car"
    result = run("store", "car", "export", str(cid_for(b"absent")), "-o", out, "--store", tmp_path / "s")
    assert result.exit_code == 2 and not out.exists()


def test_commp_vector(tmp_path):
    (tmp_path / "z").write_bytes(bytes(254))
    result = run("store", "commp", tmp_path / "z")
    assert result.exit_code == 0
    assert result.stdout.strip() == "baga6ea4seaqgiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy"
    js = json.loads(run("store", "commp", tmp_path / "z", "--json").stdout)
    assert js == {"padded_piece_size": 256, "piece_cid": "baga6ea4seaqgiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy"}
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert run("store", "commp", empty).exit_code == 2


# ----------------------------------------------------------------------------- repair, gc, reindex, pins


def _damage_first_leaf(store: Path) -> None:
    (pack,) = (store / "packs").iterdir()
    with open(pack, "r+b") as fh:  # leaf 0 is at offset 0 of the file's pack
        fh.write(b"X")


def test_get_of_a_damaged_packed_block_exits_1_every_time_until_repaired(tmp_path):
    store = tmp_path / "s"
    data = os.urandom(2 * CHUNK_SIZE + 1)
    (tmp_path / "f").write_bytes(data)
    cid = run("store", "put", tmp_path / "f", "--store", store).stdout.strip()
    _damage_first_leaf(store)
    leaf = str(cid_for(data[:CHUNK_SIZE]))
    for target in (cid, leaf, cid, leaf):  # the file, the block itself: 1 every time, nothing written out
        got = run("store", "get", target, "--store", store)
        assert got.exit_code == 1 and got.stdout_bytes == b"" and "damaged" in flat(got), flat(got)
    assert run("store", "put", tmp_path / "f", "--store", store).exit_code == 0  # present by size: not healed yet
    assert run("store", "get", cid, "--store", store).exit_code == 1
    check = run("store", "verify", "--store", store, "--json")
    assert check.exit_code == 1 and [b["cid"] for b in json.loads(check.stdout)["bad"]] == [leaf]
    repair = run("store", "verify", "--repair", "--store", store)
    assert repair.exit_code == 1 and "1 dropped" in flat(repair)
    assert run("store", "get", leaf, "--store", store).exit_code == 2  # now missing, not damaged
    assert run("store", "put", tmp_path / "f", "--store", store).exit_code == 0  # storing it again heals
    assert run("store", "get", cid, "--store", store).stdout_bytes == data
    assert run("store", "verify", "--store", store).exit_code == 0


def test_reading_writes_nothing_to_the_store(tmp_path):
    store = tmp_path / "s"
    data = os.urandom(3 * CHUNK_SIZE)
    (tmp_path / "f").write_bytes(data)
    cid = run("store", "put", tmp_path / "f", "--store", store).stdout.strip()
    small = run("store", "put", "-", "--store", store, input=b"small").stdout.strip()
    _damage_first_leaf(store)

    def snapshot():
        return {
            p.relative_to(store): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in store.rglob("*")
            if p.name != "index.sqlite-shm"  # SQLite's shared-memory file: WAL readers map it, never the index
        }

    before = snapshot()
    assert run("store", "get", cid, "--store", store).exit_code == 1
    assert run("store", "get", small, "--store", store).exit_code == 0
    assert run("store", "verify", "--store", store).exit_code == 1
    assert run("store", "car", "export", small, "-o", tmp_path / "o.car", "--store", store).exit_code == 0
    assert snapshot() == before
    # without an index at all, reads still work from the packs' own block lists, and create nothing
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store / name).unlink(missing_ok=True)
    before = snapshot()
    assert run("store", "get", str(cid_for(data[CHUNK_SIZE : 2 * CHUNK_SIZE])), "--store", store).exit_code == 0
    assert snapshot() == before


def test_gc_removes_leftovers_whatever_their_age(tmp_path):
    store = tmp_path / "s"
    run("store", "put", "-", "--store", store, input=b"keep me")
    (store / "tmp" / ("a" * 32 + ".pack")).write_bytes(os.urandom(5000))  # a writer killed mid-pack
    (store / "packs" / ("b" * 32 + ".pack")).parent.mkdir(exist_ok=True)
    (store / "packs" / ("b" * 32 + ".pack")).write_bytes(b"no trailer")
    result = run("store", "gc", "--store", store, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["tmp_files"] == 1 and report["tmp_bytes"] == 5000
    assert report["packs_removed"] == 1 and list((store / "tmp").iterdir()) == []


def test_gc_unpinned_keeps_pins_and_results(tmp_path):
    store = tmp_path / "s"
    st = LocalStore(store)
    kept = os.urandom(2 * CHUNK_SIZE + 3)
    (tmp_path / "kept").write_bytes(kept)
    kept_cid = run("store", "put", tmp_path / "kept", "--store", store).stdout.strip()
    gone = os.urandom(5 * CHUNK_SIZE)
    (tmp_path / "gone").write_bytes(gone)
    gone_cid = run("store", "put", tmp_path / "gone", "--no-pin", "--store", store).stdout.strip()
    result_cid = st.put_block(b'{"payload":"x"}', "dag-json")
    st.index_result(result_cid, {"signer": "me"})
    loose = st.put_block(b"nobody links to me")
    car = run("store", "car", "import", BASIC, "--store", store).stdout.split()
    unpinned = run("store", "car", "import", BASIC, "--no-pin", "--store", tmp_path / "other")
    assert unpinned.exit_code == 0 and run("store", "pin", "ls", "--store", tmp_path / "other").stdout == ""
    assert run("store", "pin", "rm", car[1], "--store", store).exit_code == 0
    report = json.loads(run("store", "gc", "--unpinned", "--store", store, "--json").stdout)
    st = LocalStore(store)
    assert run("store", "get", kept_cid, "--store", store).stdout_bytes == kept
    assert st.has(result_cid) and not st.has(loose) and not st.has(gone_cid)
    assert not any(st.has(cid_for(gone[i : i + CHUNK_SIZE])) for i in range(0, len(gone), CHUNK_SIZE))
    assert st.has(car[0]) and not st.has(car[1])  # the unpinned root of the CAR went, the pinned one stayed
    assert report["blocks_removed"] >= 1 + 6 + 1 and report["packs_removed"] >= 1
    check = run("store", "verify", "--store", store, "--json")
    doc = json.loads(check.stdout)  # every block is intact; the stand-in "result" is no signed envelope
    assert doc["bad"] == [] and [b["cid"] for b in doc["results_bad"]] == [str(result_cid)] and check.exit_code == 1
    assert run("store", "car", "export", car[0], "-o", tmp_path / "o.car", "--store", store).exit_code == 0


def test_gc_unpinned_compacts_a_mostly_dead_pack(tmp_path):
    store = tmp_path / "s"
    st = LocalStore(store)
    import io

    from greenbench.store.car import write_car

    blocks = [os.urandom(1000) for _ in range(10)]
    buf = io.BytesIO()
    write_car(buf, [cid_for(blocks[0])], [(cid_for(b), b) for b in blocks])
    st.import_car(buf.getvalue(), pin_roots=True)  # one pack of ten blocks, one of them pinned
    (old,) = (store / "packs").iterdir()
    report = st.gc(unpinned=True)
    assert report.packs_compacted == 1 and report.blocks_removed == 9
    (new,) = (store / "packs").iterdir()
    assert new != old and new.stat().st_size < 2000
    assert LocalStore(store).get_block(cid_for(blocks[0])) == blocks[0]
    assert st.verify().ok


def test_reindex_finds_every_published_result_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    store = tmp_path / "s"
    cids = []
    for i in range(3):
        doc = {"schema": "greenbench.result/1", "profile": {"name": f"p{i}"}, "metrics": {"decode": {"j_per_token": i}}}
        (tmp_path / f"r{i}.json").write_text(json.dumps(doc))
        cids.append(run("publish", tmp_path / f"r{i}.json", "--store", store).stdout.strip())
    st = LocalStore(store)
    st.put_block(b'{"payload":"not base64!","payloadType":"x","signatures":[]}', "dag-json")
    before = st.query_results()
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store / name).unlink(missing_ok=True)
    assert LocalStore(store).query_results() == []  # a lost index hides every result...
    result = run("store", "reindex", "--store", store, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["results"] == 3
    after = LocalStore(store).query_results()
    assert sorted(r["cid"] for r in after) == sorted(cids) and after == before  # ...until reindex


def test_pins_need_their_blocks_and_rm_of_an_unknown_pin_is_exit_2(tmp_path):
    store = tmp_path / "s"
    absent = str(cid_for(b"absent"))
    result = run("store", "pin", "add", absent, "--store", store)
    assert result.exit_code == 2 and "not in the store" in flat(result)
    small = run("store", "put", "-", "--no-pin", "--store", store, input=b"x").stdout.strip()
    assert run("store", "pin", "add", small, "--direct", "--store", store).stdout.strip() == small
    assert json.loads(run("store", "pin", "ls", "--json", "--store", store).stdout) == [{"cid": small, "type": "direct"}]
    assert run("store", "pin", "rm", absent, "--store", store).exit_code == 2


def test_car_import_max_bytes_caps_what_is_added(tmp_path):
    store = tmp_path / "s"
    capped = run("store", "car", "import", BASIC, "--max-bytes", "100", "--store", store)
    assert capped.exit_code == 2 and "import limit" in flat(capped)
    assert list(LocalStore(store).iter_cids()) == []
    assert run("store", "car", "import", BASIC, "--max-bytes", "100000", "--store", store).exit_code == 0
