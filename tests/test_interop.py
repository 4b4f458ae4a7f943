"""greenbench against real IPFS JavaScript libraries (ipfs-unixfs-importer/exporter, @helia/unixfs,
@ipld/unixfs, ipfs-car, kubo-rpc-client).

They are installed by .ci/run (``npm ci --prefix tests/interop``); without node or those packages every
test here is skipped. Kubo's exact CIDs come from these libraries configured like Kubo's
``ipfs add --cid-version=1`` (tests/data/kubo-unixfs holds CIDs Kubo itself publishes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenbench.cli import app
from greenbench.store import unixfs

INTEROP = Path(__file__).parent / "interop"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (INTEROP / "node_modules" / "ipfs-unixfs-importer").is_dir(),
    reason="needs node and the npm packages of tests/interop (npm ci --prefix tests/interop)",
)

LEAF = 256 * 1024
#: just over one leaf; several MiB; 174 leaves (one full node); 175 leaves (two levels of File nodes)
SIZES = [LEAF + 1, 5 * 1024 * 1024 + 7, 174 * LEAF, 174 * LEAF + 1]


def node(*args: str, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([NODE, *args], cwd=INTEROP, capture_output=True, timeout=300, **kw)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("interop")
    out = {}
    for size in SIZES:
        path = base / f"f{size}"
        path.write_bytes(os.urandom(size))
        out[size] = path
    return out


def test_store_put_cids_equal_the_js_importers(files, tmp_path):
    js = json.loads(node("unixfs.mjs", "cids", *map(str, files.values())).stdout)
    for size, path in files.items():
        ours = cli("store", "put", path, "--store", tmp_path / "s").stdout.strip()
        theirs = js[str(path)]
        assert ours == theirs["importer"] == theirs["helia"] == theirs["ipld_unixfs"], (size, ours, theirs)
        # @helia/unixfs 8 defaults to the IPIP-499 unixfs-v1-2025 profile (1 MiB chunks, 1024 links),
        # which greenbench builds too when asked
        data = path.read_bytes()
        assert theirs["helia_default"] == str(unixfs.build_file(data, chunk_size=1 << 20, max_links=1024)[0])


def test_js_tools_unpack_greenbench_car_exports(files, tmp_path):
    path = files[174 * LEAF + 1]
    store = tmp_path / "s"
    cid = cli("store", "put", path, "--store", store).stdout.strip()
    car = tmp_path / "f.car"
    cli("store", "car", "export", cid, "-o", car, "--store", store)
    assert node("unixfs.mjs", "cat", str(car)).stdout == path.read_bytes()  # @ipld/car + ipfs-unixfs-exporter
    out = tmp_path / "unpacked"
    node(str(INTEROP / "node_modules" / "ipfs-car" / "bin.js"), "unpack", str(car), "--output", str(out))
    assert out.read_bytes() == path.read_bytes()  # the ipfs-car command line, verifying every block


def test_js_tools_unpack_the_gateway_car(files, tmp_path):
    import httpx

    from greenbench.server.app import ServerConfig, create_app
    from greenbench.server.runner import BackgroundServer
    from greenbench.store.local import LocalStore

    path = files[5 * 1024 * 1024 + 7]
    store = LocalStore(tmp_path / "s")
    cid = store.put_file(path)
    with BackgroundServer(create_app(ServerConfig(store=store))) as srv:
        r = httpx.get(f"{srv.url}/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.car; order=dfs; dups=n"})
    assert r.status_code == 200 and r.headers["content-type"].endswith("order=dfs; dups=n")
    car = tmp_path / "gw.car"
    car.write_bytes(r.content)
    out = tmp_path / "unpacked"
    node(str(INTEROP / "node_modules" / "ipfs-car" / "bin.js"), "unpack", str(car), "--output", str(out))
    assert out.read_bytes() == path.read_bytes()


def test_kubo_rpc_client_against_greenbench_serve(tmp_path):
    """kubo-rpc-client, the JavaScript client of Kubo's RPC API, calling a greenbench server."""
    import io

    from greenbench.server.app import ServerConfig, create_app
    from greenbench.server.runner import BackgroundServer
    from greenbench.store.car import write_car
    from greenbench.store.cid import cid_for
    from greenbench.store.local import LocalStore

    blocks = [(cid_for(b"car block %d" % i), b"car block %d" % i) for i in range(3)]
    buf = io.BytesIO()
    write_car(buf, [blocks[0][0]], blocks)
    car = tmp_path / "in.car"
    car.write_bytes(buf.getvalue())
    store = LocalStore(tmp_path / "store")
    with BackgroundServer(create_app(ServerConfig(store=store))) as srv:
        out = json.loads(node("kubo.mjs", srv.url, str(car)).stdout)
    raw = cid_for(b"block from kubo-rpc-client")
    assert out["id"].startswith("12D3KooW") and out["version"]
    assert out["block_put_raw"] == str(raw) and out["block_get"] == "block from kubo-rpc-client"
    assert out["block_stat"] == len(b"block from kubo-rpc-client")
    assert store.has(out["block_put_dag_pb"]) and "DAG-PB" in out["bad_dag_pb"]
    assert out["dag_import"] == [str(blocks[0][0])] and all(store.has(c) for c, _ in blocks)
    assert out["pin_add"] == out["pin_rm"] == out["block_put_dag_pb"]
    assert [out["block_put_dag_pb"], "recursive"] in out["pin_ls"] and [str(raw), "indirect"] in out["pin_ls"]
    assert [str(c) for c, _ in store.pins()] == [str(blocks[0][0])]  # pin/rm took the other one away
    assert out["dag_export_bytes"] > 0 and "could not find" in out["missing"]
