"""LocalStore: blocks, UnixFS files in packs, verification on read, CAR import/export, index, concurrency, crashes."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenbench.errors import StoreError, VerificationError
from greenbench.store import dagjson, dagpb, unixfs
from greenbench.store.car import write_car
from greenbench.store.cid import cid_for
from greenbench.store.local import (
    BLOCK_LIMIT,
    CHUNK_SIZE,
    BlockNotFoundError,
    LocalStore,
    open_store,
)

BASIC = Path(__file__).parent / "data" / "ipld-car-spec" / "carv1-basic.car"


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def _leaves(st: LocalStore, root) -> list:
    """The raw leaves of a stored UnixFS file, in order."""
    return [c for c in unixfs.file_blocks(st.get_block, root) if c.codec_name == "raw"]


def _drop_index(root: Path) -> None:
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (root / name).unlink(missing_ok=True)


def _all_blocks_verify(st: LocalStore) -> int:
    n = 0
    for cid in st.iter_cids():
        st.get_block(cid)  # raises on a corrupted or partial block
        n += 1
    return n


def test_put_get_has(store):
    cid = store.put_block(b"hello world")
    assert str(cid) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert store.has(cid) and store.has(str(cid))
    assert store.get_block(str(cid)) == b"hello world"
    assert store.put_block(b"hello world") == cid  # idempotent
    assert not store.has(cid_for(b"other"))
    with pytest.raises(BlockNotFoundError, match="not in the store"):
        store.get_block(cid_for(b"other"))


def test_identity_blocks_need_no_storage(store):
    assert store.has("bafkqaaa") and store.get_block("bafkqaaa") == b""
    assert not (store.root / "blocks").exists()


def test_codec_blocks_are_checked(store):
    cid = store.put_block(dagjson.encode({"a": 1}), "dag-json")
    assert cid.codec_name == "dag-json"
    assert store.get_block(cid) == b'{"a":1}'
    with pytest.raises(StoreError, match="DAG-JSON"):
        store.put_block(b"{not json", "dag-json")
    with pytest.raises(StoreError, match="block limit"):
        store.put_block(bytes(BLOCK_LIMIT + 1))


def test_put_verified_rejects_mismatch(store):
    cid = cid_for(b"right")
    with pytest.raises(VerificationError, match="do not match"):
        store.put_verified(cid, b"wrong")
    assert not store.has(cid) and list(store.iter_cids()) == []
    store.put_verified(str(cid), b"right")
    assert store.get_block(cid) == b"right"


def test_corrupted_block_is_never_served(store):
    cid = store.put_block(b"precious bytes")
    path = store.block_path(cid)
    path.write_bytes(b"precious bytez")
    for _ in range(3):  # every time: a read never changes the store
        with pytest.raises(VerificationError, match="damaged.*no longer match"):
            store.get_block(cid)
    with pytest.raises(VerificationError):
        list(store.cat(cid))
    assert store.put_block(b"precious bytes") == cid  # storing it again replaces the damaged copy
    assert store.get_block(cid) == b"precious bytes"


def test_block_paths_stay_inside_the_store(store):
    for bad in ("../../etc/passwd", "bafk/../../x", "..", "/etc/passwd", "bafkrei%2e%2e"):
        with pytest.raises(StoreError):
            store.get_block(bad)
        with pytest.raises(StoreError):
            store.has(bad)
    cid = cid_for(b"x")
    assert store.block_path(cid).resolve().is_relative_to((store.root / "blocks").resolve())


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17, 9 * CHUNK_SIZE])
def test_put_file_and_cat(store, tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    cid = store.put_file(path)
    assert cid == unixfs.build_file(data)[0]  # the CID `ipfs add --cid-version=1` gives
    if size <= CHUNK_SIZE:
        assert cid == cid_for(data)
    else:
        node = dagpb.decode(store.get_block(cid))
        assert cid.codec_name == "dag-pb" and unixfs.decode_data(node.data).filesize == size
        assert _leaves(store, cid) == [cid_for(data[i : i + CHUNK_SIZE]) for i in range(0, size, CHUNK_SIZE)]
    assert b"".join(store.cat(cid)) == data
    assert b"".join(store.cat(cid, precheck=True)) == data
    assert store.put_file(io.BytesIO(data)) == cid  # streams give the same CID


def test_deep_file_dag_round_trips(store, tmp_path, monkeypatch):
    """Several levels of File nodes (174 links per node need 30,277 leaves for three levels; 3 need 10)."""
    monkeypatch.setattr(unixfs, "MAX_LINKS", 3)
    data = os.urandom(10 * CHUNK_SIZE + 5)
    root = store.put_file(io.BytesIO(data))
    assert root == unixfs.build_file(data, max_links=3)[0]
    assert b"".join(store.cat(root, precheck=True)) == data
    assert b"".join(unixfs.iter_file(store.get_block, root, 3 * CHUNK_SIZE - 2, 7 * CHUNK_SIZE + 1)) == data[
        3 * CHUNK_SIZE - 2 : 7 * CHUNK_SIZE + 1
    ]


def test_file_of_more_than_174_leaves_matches_the_in_memory_builder(store, tmp_path):
    data = os.urandom(175 * CHUNK_SIZE + 1)  # two levels of File nodes, as Kubo builds them
    (tmp_path / "f").write_bytes(data)
    root = store.put_file(tmp_path / "f")
    assert root == unixfs.build_file(data)[0]
    assert [len(dagpb.decode(store.get_block(root)).links)] == [2]
    assert b"".join(store.cat(root)) == data


def test_old_chunked_files_stay_readable(store):
    """Files stored by greenbench before UnixFS: 1 MiB raw chunks under a dag-json root."""
    parts = [os.urandom(1 << 20), os.urandom(1 << 20), b"tail"]
    chunks = [store.put_block(p) for p in parts]
    doc = {"chunk_size": 1 << 20, "chunks": chunks, "kind": "greenbench.chunked-file/1", "size": sum(map(len, parts))}
    root = store.put_block(dagjson.encode(doc), "dag-json")
    assert b"".join(store.cat(root, precheck=True)) == b"".join(parts)
    store.blockfiles.remove(chunks[1].multihash)
    with pytest.raises(BlockNotFoundError):
        b"".join(store.cat(root))


def test_chunked_file_with_corrupted_chunk(store, tmp_path):
    data = os.urandom(2 * CHUNK_SIZE + 5)
    (tmp_path / "f").write_bytes(data)
    root = store.put_file(tmp_path / "f")
    (pack,) = (store.root / "packs").iterdir()  # leaf i lives at offset i * CHUNK_SIZE of the file's pack
    with open(pack, "r+b") as fh:
        fh.seek(2 * CHUNK_SIZE + 1)
        fh.write(b"x")
    got = []
    with pytest.raises(VerificationError):
        for chunk in store.cat(root, precheck=True):
            got.append(chunk)
    assert got == []  # precheck: nothing handed out before the failure


def test_import_export_round_trip(store, tmp_path):
    roots = store.import_car(BASIC)
    assert [str(r) for r in roots] == [
        "bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm",
        "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm",
    ]
    assert roots.blocks == 8 and roots.new_blocks == 8
    assert len(_packs(store.root)) == 1  # the CAR's blocks went in as one pack
    assert store.import_car(BASIC).new_blocks == 0
    assert len(_packs(store.root)) == 1  # nothing new: no second pack
    out = tmp_path / "out.car"
    assert store.export_car(roots, out) == 8
    assert out.read_bytes() == BASIC.read_bytes()  # same DAG, same depth-first order
    assert _all_blocks_verify(store) == 8


def test_export_of_chunked_file_reimports(store, tmp_path):
    data = os.urandom(2 * CHUNK_SIZE + 3)
    (tmp_path / "f").write_bytes(data)
    root = store.put_file(tmp_path / "f")
    assert store.export_car([root], tmp_path / "f.car") == 4  # the root File node and three leaves
    other = LocalStore(tmp_path / "other")
    assert list(other.import_car(tmp_path / "f.car")) == [root]
    assert b"".join(other.cat(root)) == data


def test_import_skips_blocks_stored_as_files_and_repeats(store, tmp_path):
    a, b = b"stored before as a file", b"new"
    store.put_block(a)
    blocks = [(cid_for(a), a), (cid_for(b), b), (cid_for(b), b)]
    buf = io.BytesIO()
    write_car(buf, [cid_for(b)], iter(blocks))
    result = store.import_car(buf.getvalue())
    assert result.blocks == 3 and result.new_blocks == 1
    (pack,) = _packs(store.root)
    assert _pack_data(pack) == b"new"  # only the one new block, once
    assert sorted(str(c) for c in store.iter_cids()) == sorted([str(cid_for(a)), str(cid_for(b))])


def test_export_missing_block_names_parent(store, tmp_path):
    child = cid_for(b"never stored")
    parent = store.put_block(dagjson.encode({"child": child}), "dag-json")
    with pytest.raises(BlockNotFoundError, match=f"linked from {parent}"):
        store.export_car([parent], tmp_path / "x.car")
    assert not (tmp_path / "x.car").exists()
    assert not list(tmp_path.glob(".x.car.*"))


def _car(blocks, roots=None) -> bytes:
    buf = io.BytesIO()
    write_car(buf, roots or [blocks[0][0]], blocks)
    return buf.getvalue()


def test_import_is_all_or_nothing_on_bad_hash(store, tmp_path):
    good = [(cid_for(bytes([i]) * 10), bytes([i]) * 10) for i in range(5)]
    bad = good[:3] + [(cid_for(b"claimed"), b"actual")] + good[3:]
    path = tmp_path / "bad.car"
    path.write_bytes(_car(bad))
    with pytest.raises(VerificationError, match="nothing imported"):
        store.import_car(path)
    assert list(store.iter_cids()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_import_is_all_or_nothing_on_truncation(store, tmp_path):
    raw = _car([(cid_for(bytes([i]) * 10), bytes([i]) * 10) for i in range(5)])
    with pytest.raises(StoreError, match="truncated"):
        store.import_car(raw[:-4])
    assert list(store.iter_cids()) == []


def test_result_index(store):
    a, b, c = (store.put_block(x) for x in (b"a", b"b", b"c"))
    base = {"signer": "did:key:z6MkA", "profile": "llama-tiny", "backend": "cpu", "created": "2024-05-01T00:00:00Z"}
    store.index_result(a, {**base, "hardware": {"cpu_model": "EPYC", "gpu_models": []}, "metrics": {"j_per_token": 0.5, "tokens_per_s": 100}})
    store.index_result(b, {**base, "backend": "cuda", "created": "2024-06-01T00:00:00Z",
                           "hardware": {"cpu_model": "EPYC", "gpu_models": ["NVIDIA A100"]}, "metrics": {"j_per_token": 0.1, "tokens_per_s": 900}})
    store.index_result(c, {**base, "signer": "did:key:z6MkB", "created": "2024-07-01T00:00:00Z",
                           "hardware": {"cpu_model": "Xeon"}, "metrics": {"j_per_token": 0.7, "tokens_per_s": 50}})
    assert [r["cid"] for r in store.query_results()] == [str(a), str(b), str(c)]
    assert [r["cid"] for r in store.query_results(backend="cuda")] == [str(b)]
    assert [r["cid"] for r in store.query_results(gpu_model="NVIDIA A100")] == [str(b)]
    assert [r["cid"] for r in store.query_results(signer="did:key:z6MkA", order_by="-j_per_token")] == [str(a), str(b)]
    assert [r["cid"] for r in store.query_results(max_j_per_token=0.5, min_tokens_per_s=200)] == [str(b)]
    assert [r["cid"] for r in store.query_results(created_after="2024-06-01", limit=1)] == [str(b)]
    assert store.query_results(cid=str(c))[0]["hardware"]["cpu_model"] == "Xeon"
    with pytest.raises(StoreError, match="unknown result filter"):
        store.query_results(colour="green")
    with pytest.raises(StoreError, match="cannot order"):
        store.query_results(order_by="info; DROP TABLE results")
    import sqlite3

    conn = sqlite3.connect(store.index_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_query_on_empty_store(store):
    assert store.query_results(backend="cpu") == []


def test_open_store_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_STORE", str(tmp_path / "env"))
    assert open_store(None).root == tmp_path / "env"
    assert open_store(str(tmp_path / "opt")).root == tmp_path / "opt"


def test_unknown_layout_version_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "greenbench-store.json").write_text('{"version": 99}')
    with pytest.raises(StoreError, match="layout version 99"):
        LocalStore(tmp_path / "s")


def test_unwritable_store_is_a_clean_error(tmp_path):
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(StoreError, match="cannot"):
        LocalStore(tmp_path / "file" / "store").put_block(b"x")


def _writer(root: str, seed: int, n: int) -> None:
    st = LocalStore(root)
    for i in range(n):
        data = f"shared-{i}".encode() if i % 2 else f"own-{seed}-{i}".encode() * 50
        cid = st.put_block(data)
        st.index_result(cid, {"signer": f"w{seed}", "backend": "cpu", "created": f"2024-01-01T00:00:{i:02d}Z",
                              "metrics": {"j_per_token": i}})
    big = bytes([seed]) * (CHUNK_SIZE + 100)
    st.put_file(io.BytesIO(big))


def test_concurrent_writers_never_corrupt(tmp_path):
    root = str(tmp_path / "shared")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, seed, 30)) for seed in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    st = LocalStore(root)
    # 4 x 15 own blocks + 15 shared + 4 x (2 leaves + 1 root File node)
    assert _all_blocks_verify(st) == 4 * 15 + 15 + 4 * 3
    assert len(st.query_results()) == 4 * 15 + 15
    assert list((Path(root) / "tmp").iterdir()) == []


_CRASH_SCRIPT = """
import os, sys
from greenbench.store.local import LocalStore

st = LocalStore(sys.argv[1], workers=2)

class Slow:
    left = 64
    def read(self, n):
        if not self.left:
            return b""
        self.left -= 1
        if self.left == 60:
            print("started", flush=True)
        return os.urandom(n)

if sys.argv[2] == "blocks":
    for i in range(100000):
        st.put_block(os.urandom(256 * 1024))
        if i == 3:
            print("started", flush=True)
else:
    st.put_file(Slow())
"""


@pytest.mark.parametrize("mode", ["blocks", "file"])
def test_crash_mid_write_leaves_no_partial_block(tmp_path, mode):
    """SIGKILL a writer mid-stream; every visible block must still verify and no temp file is visible."""
    root = tmp_path / "crash"
    proc = subprocess.Popen([sys.executable, "-c", _CRASH_SCRIPT, str(root), mode], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    st = LocalStore(root)
    n = _all_blocks_verify(st)  # raises if any visible block is partial
    if mode == "blocks":
        assert n >= 4
    for path in (root / "blocks").rglob("*"):
        assert path.is_dir() or not path.name.endswith(".tmp")
    st.gc()
    assert list((root / "tmp").iterdir()) == []
    if mode == "file":  # the pack being written when the writer died is not referenced, so it is gone
        assert not (root / "packs").is_dir() or list((root / "packs").iterdir()) == []


def _big_file(tmp_path, size=3 * 1024 * 1024 + 123):
    import os as _os

    data = _os.urandom(size)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    return f, data


def _pack_data(path: Path) -> bytes:
    """A pack's data, without the trailer (rows + 24-byte footer: magic, rows' offset, rows' length): a
    file's leaves at their offsets, then its File nodes."""
    raw = path.read_bytes()
    assert raw[-24:-16] == b"GBPACK\x00\x01"
    return raw[: int.from_bytes(raw[-16:-8], "little")]


def _packs(store_root: Path) -> list[Path]:
    d = store_root / "packs"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_large_chunks_round_trip_with_direct_io(tmp_path, monkeypatch):
    from greenbench.store import local as local_mod
    from greenbench.store.blockfiles import O_DIRECT

    real_open = os.open
    direct_opens = []

    def counting_open(path, flags, *a, **k):
        if O_DIRECT and flags & O_DIRECT:
            direct_opens.append(path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(local_mod.os, "open", counting_open)
    f, data = _big_file(tmp_path)
    store = local_mod.LocalStore(tmp_path / "s")
    root = store.put_file(f)
    assert b"".join(store.cat(root)) == data
    assert not list((tmp_path / "s" / "tmp").iterdir())  # no temporary files left behind
    (pack,) = _packs(store.root)
    written = _pack_data(pack)
    assert written[: len(data)] == data  # the leaves are the file, the padded O_DIRECT tail truncated away
    assert written[len(data) :] == store.get_block(root)  # then the root File node
    if O_DIRECT:
        # The pack was offered to O_DIRECT; a filesystem that refuses it leaves the store on buffered
        # writes, which the next tests cover.
        assert direct_opens and (store.blockfiles.direct_ok or len(direct_opens) == 1)


def test_direct_write_refused_midway_falls_back(tmp_path, monkeypatch):
    import errno as _errno

    from greenbench.store import local as local_mod
    from greenbench.store import packs as packs_mod

    if not packs_mod.O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    real = packs_mod.pwrite_all
    state = {"calls": 0, "failed_at": None}

    def failing_second(fd, data, offset):
        state["calls"] += 1
        if state["calls"] == 2:  # the second O_DIRECT write, after a first that went through
            state["failed_at"] = offset
            raise OSError(_errno.EINVAL, "alignment refused")
        return real(fd, data, offset)

    monkeypatch.setattr(packs_mod, "pwrite_all", failing_second)
    # 9 MiB: at most 4 MiB per write, so there is always a second write
    f, data = _big_file(tmp_path, size=9 * (1 << 20) + 123)
    store = local_mod.LocalStore(tmp_path / "s", workers=1)
    root = store.put_file(f)
    assert state["failed_at"] and store.blockfiles.direct_ok is False
    assert b"".join(store.cat(root)) == data
    assert [_pack_data(p)[: len(data)] for p in _packs(store.root)] == [data]


def test_direct_io_refused_falls_back_to_buffered(tmp_path, monkeypatch):
    import errno as _errno

    from greenbench.store import local as local_mod
    from greenbench.store.blockfiles import O_DIRECT

    real_open = os.open
    calls = {"direct": 0}

    def refusing_open(path, flags, *a, **k):
        if O_DIRECT and flags & O_DIRECT:
            calls["direct"] += 1
            raise OSError(_errno.EINVAL, "O_DIRECT not supported here")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(local_mod.os, "open", refusing_open)
    f, data = _big_file(tmp_path)
    store = local_mod.LocalStore(tmp_path / "s", workers=1)
    root = store.put_file(f)
    assert b"".join(store.cat(root)) == data
    assert calls["direct"] <= 1  # refused once, then the store stays on buffered writes
    assert store.blockfiles.direct_ok is False


def test_packed_chunks_are_blocks_like_any_other(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    chunks = _leaves(store, root)
    assert all(store.has(c) for c in chunks)
    assert all(store.get_block(c) == data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE] for i, c in enumerate(chunks))
    assert {str(c) for c in store.iter_cids()} == {str(c) for c in chunks} | {str(cid_for(store.get_block(root)))}
    assert store.block_size(chunks[0]) == CHUNK_SIZE and store.block_size(root) == len(store.get_block(root))
    # the same chunks offered as single blocks are recognised as present: nothing new is written
    before = sorted(p.name for p in (store.root / "blocks").rglob("*") if p.is_file())
    for i in range(len(chunks)):
        store.put_block(data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE])
    assert sorted(p.name for p in (store.root / "blocks").rglob("*") if p.is_file()) == before


def test_storing_again_writes_no_new_pack(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    assert store.put_file(f) == root and store.put_file(io.BytesIO(data)) == root
    assert len(_packs(store.root)) == 1


def test_chunks_already_stored_are_holes_in_the_pack(store, tmp_path):
    data = os.urandom(3 * CHUNK_SIZE)
    store.put_block(data[CHUNK_SIZE : 2 * CHUNK_SIZE])  # the middle chunk, stored before as a block file
    root = store.put_file(io.BytesIO(data))
    assert b"".join(store.cat(root, precheck=True)) == data
    (pack,) = _packs(store.root)
    written = _pack_data(pack)[: len(data)]
    assert written[:CHUNK_SIZE] == data[:CHUNK_SIZE] and written[2 * CHUNK_SIZE :] == data[2 * CHUNK_SIZE :]
    assert written[CHUNK_SIZE : 2 * CHUNK_SIZE] == bytes(CHUNK_SIZE)  # a hole, not a second copy


def test_repeated_chunks_are_written_once(store, tmp_path):
    data = bytes(3 * CHUNK_SIZE + 10)
    root = store.put_file(io.BytesIO(data))
    assert b"".join(store.cat(root)) == data
    (pack,) = _packs(store.root)
    assert len(_pack_data(pack)) == 3 * CHUNK_SIZE + 10 + len(store.get_block(root))  # the last leaf at its offset
    assert pack.stat().st_blocks * 512 <= 2 * CHUNK_SIZE + 64 * 1024  # but only two chunks' worth of disk


def test_missing_pack_is_a_verification_error_and_can_be_repaired(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    (pack,) = _packs(store.root)
    pack.unlink()
    for _ in range(2):
        with pytest.raises(VerificationError, match="missing"):
            b"".join(store.cat(root))
    report = store.verify(repair=True)
    assert not report.ok and report.repaired == len(report.bad) == 14  # 13 leaves and the root
    assert store.put_file(f) == root  # the damaged entries were dropped, so storing again repairs the file
    assert b"".join(store.cat(root, precheck=True)) == data
    assert store.verify().ok


def test_corrupted_packed_chunk_fails_every_time_until_repaired(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    first = _leaves(store, root)[0]
    (pack,) = _packs(store.root)
    with open(pack, "r+b") as fh:
        fh.write(b"X")
    before = store.index_path.read_bytes()
    for _ in range(3):  # a read never writes the index: the same verdict every time
        with pytest.raises(VerificationError, match="damaged"):
            store.get_block(first)
    assert store.index_path.read_bytes() == before
    assert store.put_file(f) == root  # present (by size): not written again
    with pytest.raises(VerificationError):
        store.get_block(first)
    report = store.verify()
    assert [b["cid"] for b in report.bad] == [str(first)] and report.repaired == 0
    assert store.verify(repair=True).repaired == 1
    assert not store.has(first)
    store.put_file(f)  # storing the file again heals it
    assert store.get_block(first) == data[:CHUNK_SIZE]
    assert b"".join(store.cat(root, precheck=True)) == data
    assert store.verify().ok


def test_version_1_store_is_read_and_upgraded_by_its_first_pack(tmp_path):
    import json

    root = tmp_path / "old"
    old = LocalStore(root)
    small = old.put_block(b"from a version-1 store")
    (root / "greenbench-store.json").write_text('{"layout": "blocks/<shard>/<base32 multihash>", "version": 1}')
    st = LocalStore(root)
    assert st.get_block(small) == b"from a version-1 store"
    st.put_block(b"still no pack")
    assert json.loads((root / "greenbench-store.json").read_text())["version"] == 1
    f, data = _big_file(tmp_path)
    big = st.put_file(f)
    assert json.loads((root / "greenbench-store.json").read_text())["version"] == 2
    assert b"".join(LocalStore(root).cat(big)) == data


def test_gc_deletes_dead_writers_leftovers_and_keeps_good_packs(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    damaged = store.root / "packs" / ("0" * 32 + ".pack")
    damaged.write_bytes(b"no trailer: not a pack greenbench finished")
    (store.root / "packs" / "notes.txt").write_text("not a pack: never touched")
    unfinished = store.root / "tmp" / ("1" * 32 + ".pack")
    unfinished.write_bytes(b"a writer died while writing this")
    fresh = store.root / "tmp" / "blk-0123.tmp"
    fresh.write_bytes(b"however young: no live writer holds it")
    # A pack whose writer died after moving it into packs/ but before its rows went in: complete, so
    # gc indexes it rather than deleting it.
    other = LocalStore(tmp_path / "other")
    other_root = other.put_file(io.BytesIO(bytes(range(256)) * 8192 + b"tail"))
    (orphan,) = _packs(other.root)
    (store.root / "packs" / orphan.name).write_bytes(orphan.read_bytes())
    assert not store.has(_leaves(other, other_root)[0])
    report = store.gc()
    assert (report.tmp_files, report.packs_removed, report.packs_reindexed) == (2, 1, 1)
    assert not damaged.exists() and not unfinished.exists() and not fresh.exists()
    assert (store.root / "packs" / "notes.txt").exists()
    assert all(store.has(c) for c in _leaves(other, other_root))
    assert b"".join(store.cat(root)) == data


def test_gc_waits_for_writers_and_leaves_a_locked_pack_alone(store, tmp_path):
    """gc started while a writer is between moving its pack into packs/ and committing its rows."""
    import threading

    f, data = _big_file(tmp_path)
    seen = {}
    real = store._upgrade_marker

    def meanwhile():  # runs after the rename, before the rows go in
        other = LocalStore(store.root)
        t = threading.Thread(target=lambda: seen.setdefault("report", other.gc()))
        t.start()
        t.join(0.5)
        seen["waited"] = t.is_alive()  # gc waits for the writer's shared lock
        seen["thread"] = t
        real()

    store._upgrade_marker = meanwhile
    root = store.put_file(f)
    seen["thread"].join(10)
    assert seen["waited"] and seen["report"].packs_removed == 0 and len(_packs(store.root)) == 1
    assert b"".join(LocalStore(store.root).cat(root)) == data


def test_gc_never_deletes_packs_when_the_index_is_unreadable(store, tmp_path, monkeypatch):
    from greenbench.store.index import Index

    f, data = _big_file(tmp_path)
    root = store.put_file(f)

    def busy(self, *args):  # another process holds the index past the busy timeout
        raise StoreError("cannot read the index: database is locked")

    monkeypatch.setattr(Index, "pack_names", busy)
    with pytest.raises(StoreError, match="database is locked"):
        LocalStore(store.root).gc()
    monkeypatch.undo()
    assert len(_packs(store.root)) == 1
    assert b"".join(LocalStore(store.root).cat(root)) == data


def test_reindex_skips_a_pack_its_writer_still_holds(store, tmp_path):
    """Another process re-indexes between a writer's rename and its row insert: the writer holds the
    pack's lock, so only the writer inserts its rows (or deletes the pack)."""
    f, data = _big_file(tmp_path)
    real = store._upgrade_marker
    seen = {}

    def meanwhile():
        other = LocalStore(store.root)
        seen["indexed"] = other.reindex_packs()
        seen["has"] = other.has(cid_for(data[:CHUNK_SIZE]))
        real()

    store._upgrade_marker = meanwhile
    root = store.put_file(f)
    assert seen == {"indexed": 0, "has": False}
    assert len(_packs(store.root)) == 1
    assert b"".join(LocalStore(store.root).cat(root, precheck=True)) == data


def test_failure_after_the_rename_keeps_a_pack_that_rows_name(store, tmp_path):
    f, data = _big_file(tmp_path)
    state = {}

    def rows_then_failure():  # after the rename; as if rows naming the pack had gone in meanwhile
        (pack,) = _packs(store.root)
        store.index.insert_packed([(cid_for(data[:CHUNK_SIZE]).multihash, pack.name, 0, CHUNK_SIZE)])
        state["pack"] = pack
        raise OSError(5, "Input/output error")

    store._upgrade_marker = rows_then_failure
    with pytest.raises(StoreError):
        store.put_file(f)
    assert state["pack"].exists()  # rows name it: kept
    assert LocalStore(store.root).get_block(cid_for(data[:CHUNK_SIZE])) == data[:CHUNK_SIZE]


def test_failure_after_the_rename_removes_an_unnamed_pack(store, tmp_path):
    f, _ = _big_file(tmp_path)

    def failure():
        raise OSError(5, "Input/output error")

    store._upgrade_marker = failure
    with pytest.raises(StoreError):
        store.put_file(f)
    assert _packs(store.root) == [] and list((store.root / "tmp").iterdir()) == []


def test_interrupt_after_the_rows_went_in_keeps_the_pack(store, tmp_path):
    f, data = _big_file(tmp_path)
    real = store.index.insert_packed

    def insert_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)  # committed: the rows are visible to every process
        raise KeyboardInterrupt  # Ctrl-C one bytecode later

    store.index.insert_packed = insert_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        store.put_file(f)
    fresh = LocalStore(store.root)
    assert len(_packs(store.root)) == 1
    assert _all_blocks_verify(fresh) == 14  # every visible block readable: 13 leaves and the root


def test_interrupt_before_the_rows_went_in_removes_the_pack(store, tmp_path):
    f, _ = _big_file(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    store.index.insert_packed = interrupted
    with pytest.raises(KeyboardInterrupt):
        store.put_file(f)
    assert _packs(store.root) == [] and list((store.root / "tmp").iterdir()) == []
    assert list(LocalStore(store.root).iter_cids()) == []


def test_index_recreated_empty_is_rebuilt_before_use(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    small = store.put_block(b"a result")
    _drop_index(store.root)
    again = LocalStore(store.root)
    again.index_result(small, {"signer": "me"})  # writes the index first (as `publish` would)
    assert b"".join(again.cat(root, precheck=True)) == data
    assert again.gc().packs_removed == 0 and len(_packs(store.root)) == 1


def test_lost_index_is_rebuilt_once_whatever_the_threads(store, tmp_path, monkeypatch):
    from greenbench.store import local as local_mod
    from greenbench.store.packs import Packs

    for _ in range(3):
        store.put_file(io.BytesIO(os.urandom(4 * CHUNK_SIZE)))
    _drop_index(store.root)
    calls = []
    real = Packs.verified_rows
    monkeypatch.setattr(Packs, "verified_rows", lambda self, p: calls.append(p) or real(self, p))
    again = local_mod.LocalStore(store.root, workers=4)
    again.put_file(io.BytesIO(os.urandom(8 * CHUNK_SIZE)))  # four workers look blocks up at once
    assert len(calls) == 3  # each of the three packs read once


def test_damaged_index_is_a_clean_error(store, tmp_path):
    f, _ = _big_file(tmp_path)
    root = store.put_file(f)
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        (store.root / name).unlink(missing_ok=True)
    (store.root / "index.sqlite").write_bytes(b"not a database " * 500)
    for call in (
        lambda s: b"".join(s.cat(root)),
        lambda s: list(s.iter_cids()),
        lambda s: s.gc(),
        lambda s: s.put_file(io.BytesIO(os.urandom(2 * CHUNK_SIZE + 1))),
        lambda s: s.import_car(BASIC),
        lambda s: s.query_results(),
    ):
        with pytest.raises(StoreError, match="index") as info:
            call(LocalStore(store.root))
        assert "move it away" in (info.value.hint or "") or "index" in str(info.value)


def test_missing_packs_directory_keeps_the_index(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    (store.root / "packs").rename(store.root / "packs.away")  # unmounted, or being moved
    with pytest.raises(StoreError, match="missing"):
        b"".join(LocalStore(store.root).cat(root))
    (store.root / "packs.away").rename(store.root / "packs")
    assert b"".join(LocalStore(store.root).cat(root)) == data


def test_index_naming_a_pack_outside_the_store_is_refused(store, tmp_path):
    import sqlite3

    f, _ = _big_file(tmp_path)
    root = store.put_file(f)
    first = _leaves(store, root)[0]
    with sqlite3.connect(store.index_path) as conn:
        conn.execute("UPDATE packed SET pack = '../../etc/passwd'")
    with pytest.raises(StoreError, match="outside the store"):
        LocalStore(store.root).get_block(first)


class _FailingStream:
    """Gives ``good`` whole chunks, then raises ``exc`` (a disk error, or Ctrl-C)."""

    def __init__(self, good: int, exc: BaseException):
        self.left, self.exc = good, exc

    def read(self, n):
        if not self.left:
            raise self.exc
        self.left -= 1
        return os.urandom(n)


@pytest.mark.parametrize("exc", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_failed_put_file_leaves_nothing_visible(store, exc):
    store.put_block(b"already here")
    with pytest.raises((StoreError, KeyboardInterrupt)):
        store.put_file(_FailingStream(5, exc))
    assert [str(c) for c in store.iter_cids()] == [str(cid_for(b"already here"))]
    assert _packs(store.root) == [] and list((store.root / "tmp").iterdir()) == []


def test_file_that_shrinks_while_stored_is_refused(store, tmp_path, monkeypatch):
    from greenbench.store import files as files_mod

    f, _ = _big_file(tmp_path)
    real = files_mod._regular_file

    def shrinking(fh):
        info = real(fh)
        os.truncate(f, 2 * CHUNK_SIZE)  # after the size was taken, before the chunks are read
        return info

    monkeypatch.setattr(files_mod, "_regular_file", shrinking)
    with pytest.raises(StoreError, match="changed while it was being stored"):
        store.put_file(f)
    assert list(store.iter_cids()) == [] and _packs(store.root) == []


def test_large_single_block_direct_write_refused_falls_back(tmp_path, monkeypatch):
    import errno as _errno

    from greenbench.store import blockfiles as bf
    from greenbench.store import local as local_mod

    if not bf.O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    real = bf.write_all
    state = {"failed": 0}

    def refuse_first(fd, data):
        if not state["failed"] and len(data) == bf._DIRECT_MIN:  # the block's O_DIRECT write
            state["failed"] = 1
            raise OSError(_errno.EINVAL, "alignment refused")
        return real(fd, data)

    monkeypatch.setattr(bf, "write_all", refuse_first)
    store = local_mod.LocalStore(tmp_path / "s")
    data = os.urandom(bf._DIRECT_MIN)
    cid = store.put_block(data)
    assert state["failed"] and store.blockfiles.direct_ok is False
    assert store.get_block(cid) == data and list((tmp_path / "s" / "tmp").iterdir()) == []


def test_lost_index_is_rebuilt_from_the_packs(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    car_roots = store.import_car(BASIC)
    chunks = _leaves(store, root)
    (store.root / "packs" / ("f" * 32 + ".pack")).write_bytes(b"a pack whose writer died: no trailer")
    _drop_index(store.root)
    again = LocalStore(store.root)  # as a new process would find it
    assert b"".join(again.cat(root, precheck=True)) == data  # read from the packs' trailers
    assert all(again.has(c) for c in chunks)
    assert again.export_car(car_roots, tmp_path / "out.car") == 8
    assert (tmp_path / "out.car").read_bytes() == BASIC.read_bytes()
    assert not again.index_path.exists()  # reading wrote nothing
    assert again.reindex().pack_rows == 8 + 14  # the CAR's blocks, the file's 13 leaves and its root
    assert again.reindex_packs() == 0  # everything is indexed already


def test_reindex_leaves_out_damaged_blocks(store, tmp_path):
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    chunks = _leaves(store, root)
    (pack,) = _packs(store.root)
    with open(pack, "r+b") as fh:
        fh.seek(CHUNK_SIZE + 7)
        fh.write(b"!")  # damage leaf 1
    _drop_index(store.root)
    again = LocalStore(store.root)
    again.reindex()
    assert again.has(chunks[0]) and not again.has(chunks[1]) and again.has(chunks[2])
    again.put_file(f)  # storing the file again repairs it
    assert b"".join(again.cat(root, precheck=True)) == data


def _init_index(root, barrier):
    barrier.wait()
    try:
        LocalStore(root).index.connect().close()
    except StoreError:
        os._exit(1)
    os._exit(0)


def test_writers_creating_the_index_at_once_all_succeed(tmp_path):
    """Switching a new index to WAL takes a lock SQLite's busy handler does not wait for: without the
    retry, some of several processes opening a new store at once failed with 'database is locked'."""
    ctx = multiprocessing.get_context("fork")
    for i in range(8):
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_init_index, args=(str(tmp_path / str(i)), barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]


def test_long_lived_handle_follows_a_replaced_index(store, tmp_path):
    """A server's store handle keeps SQLite connections open: after the index file is lost and made
    anew by another process, it must read the new file, not the deleted one."""
    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    assert b"".join(store.cat(root)) == data  # this handle now has an open connection
    _drop_index(store.root)
    other = LocalStore(store.root)  # another process: rebuilds the index, then stores a new file
    more = os.urandom(2 * CHUNK_SIZE + 9)
    new_root = other.put_file(io.BytesIO(more))
    assert b"".join(store.cat(new_root, precheck=True)) == more
    assert b"".join(store.cat(root, precheck=True)) == data


@pytest.mark.parametrize("first", ["read", "read in a new thread", "index_result", "put_file"])
def test_long_lived_handle_recovers_a_lost_index_by_itself(store, tmp_path, first):
    """A server whose index.sqlite is lost with no other process around: whatever touches the index
    first in that process makes it anew and rebuilds it from the packs."""
    import threading

    f, data = _big_file(tmp_path)
    root = store.put_file(f)
    small = store.put_block(b"a result")
    assert b"".join(store.cat(root)) == data
    _drop_index(store.root)
    if first == "read":
        assert b"".join(store.cat(root)) == data
    elif first == "read in a new thread":
        out = []
        t = threading.Thread(target=lambda: out.append(b"".join(store.cat(root))))
        t.start()
        t.join()
        assert out == [data]
    elif first == "index_result":
        store.index_result(small, {"profile": "p"})
        assert [r["profile"] for r in store.query_results()] == ["p"]
    else:
        store.put_file(io.BytesIO(os.urandom(2 * CHUNK_SIZE + 3)))
    assert b"".join(store.cat(root, precheck=True)) == data
    assert b"".join(LocalStore(store.root).cat(root)) == data


def test_stray_files_and_bad_arguments_are_clean_errors_or_ignored(store, tmp_path):
    cid = store.put_block(b"block")
    (store.root / "blocks" / ".DS_Store").write_bytes(b"finder was here")
    assert [str(c) for c in store.iter_cids()] == [str(cid)]
    with pytest.raises(StoreError, match="limit must be an integer"):
        store.query_results(limit="x")
    for bad in (10**20, -1, "1e3", True):
        with pytest.raises(StoreError, match="(limit|offset) must be an integer from 0"):
            store.query_results(limit=bad)
        with pytest.raises(StoreError, match="(limit|offset) must be an integer from 0"):
            store.query_results(offset=bad)
    with pytest.raises(StoreError, match="max_j_per_token"):
        store.query_results(max_j_per_token="lots")
    for bad in ("nan", "inf", float("-inf")):
        with pytest.raises(StoreError, match="finite number"):
            store.query_results(max_j_per_token=bad)


def test_index_reader_maps_the_file_except_when_immutable(tmp_path):
    from greenbench.store import index as index_mod

    store = LocalStore(tmp_path / "st")
    store.import_car(BASIC)  # packed blocks: the index exists, in WAL mode
    store.index.close()
    reader = store.index.reader()
    assert reader.execute("PRAGMA mmap_size").fetchone()[0] == index_mod._READ_MMAP_BYTES
    store.index.close()
    # a reader that cannot use the WAL's shared memory falls back to immutable=1: SQLite then never re-checks
    # the file's size, so a file shrunk in place under a map would kill the process (SIGBUS): no map there
    shm = tmp_path / "st" / "index.sqlite-shm"
    shm.unlink(missing_ok=True)
    shm.symlink_to(tmp_path / "nowhere" / "x")
    fallback = LocalStore(tmp_path / "st").index.reader()
    assert fallback.execute("PRAGMA mmap_size").fetchone()[0] == 0
    assert fallback.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
