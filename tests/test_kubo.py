"""Kubo RPC client against a small fake Kubo node that follows the Kubo RPC docs.

The fake (https://docs.ipfs.tech/reference/kubo/rpc/): every command is POST (other methods get
405); arguments in the query string; uploads as multipart/form-data; JSON replies (ndjson for
dag/import); errors as HTTP 500 with {"Message": ..., "Code": 0, "Type": "error"}. It parses
multipart with the standard library's email parser, independently of greenbench's server code.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import io
import json
import socket

import pytest

from greenbench.errors import GreenbenchError
from greenbench.store.car import write_car
from greenbench.store.cid import CID, cid_for
from greenbench.server.runner import BackgroundServer
from greenbench.store.kubo import KuboClient, KuboError, kubo_base_url


class FakeKubo:
    """In-memory Kubo RPC subset: version, dag/import, pin/add, block/get, block/put.

    Attributes:
        mode: ``ok``; ``lie`` (report another root); ``pin-error`` (PinErrorMsg set); ``fail``
            (every command answers a Kubo error); ``slow`` (sleeps before answering).
    """

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.blocks: dict[CID, bytes] = {}
        self.pins: set[CID] = set()
        self.calls: list[tuple[str, str, dict]] = []
        self.app = self._build()

    @staticmethod
    def _error(message: str, status: int = 500):
        from starlette.responses import JSONResponse

        return JSONResponse({"Message": message, "Code": 0, "Type": "error"}, status_code=status)

    @staticmethod
    def _files(content_type: str, body: bytes) -> list[bytes]:
        if not content_type.startswith("multipart/form-data"):
            raise ValueError("expected multipart/form-data")
        msg = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        return [part.get_payload(decode=True) for part in msg.iter_parts()]

    def _build(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, PlainTextResponse, Response
        from starlette.routing import Route

        fake = self

        async def handle(request):
            cmd = request.path_params["cmd"]
            fake.calls.append((request.method, cmd, dict(request.query_params)))
            if request.method != "POST":
                return PlainTextResponse("405 - Method Not Allowed", status_code=405)
            if fake.mode == "slow":
                await asyncio.sleep(0.6)
            if fake.mode == "fail":
                return fake._error("context deadline exceeded")
            body = await request.body()
            if cmd == "version":
                return JSONResponse({"Version": "0.29.0", "Commit": "", "Repo": "15", "System": "amd64/linux", "Golang": "go1.22.2"})
            if cmd == "dag/import":
                from greenbench.store.car import read_car

                try:
                    (car,) = fake._files(request.headers.get("content-type", ""), body)
                    roots, blocks = read_car(io.BytesIO(car))
                    got = {}
                    for cid, data in blocks:
                        if not cid.verify(data):
                            return fake._error(f"block {cid} does not match its hash")
                        got[cid] = data
                except (ValueError, GreenbenchError) as exc:
                    return fake._error(f"failed to import CAR: {exc}")
                fake.blocks.update(got)
                lines = []
                for r in roots:
                    shown = r
                    if fake.mode == "lie":
                        shown = cid_for(b"something else", "raw")
                    pin_err = "pinning failed: not enough disk" if fake.mode == "pin-error" else ""
                    if r in got and request.query_params.get("pin-roots", "true") == "true" and not pin_err:
                        fake.pins.add(r)
                    lines.append(json.dumps({"Root": {"Cid": {"/": str(shown)}, "PinErrorMsg": pin_err}}))
                return Response("\n".join(lines) + "\n", media_type="application/json")
            if cmd == "pin/add":
                try:
                    cid = CID.decode(request.query_params.get("arg", ""))
                except GreenbenchError as exc:
                    return fake._error(f"invalid path: {exc.message}")
                if cid not in fake.blocks:
                    return fake._error(f"pin: block was not found locally (offline): ipld: could not find {cid}")
                fake.pins.add(cid)
                return JSONResponse({"Pins": [str(cid)]})
            if cmd == "block/get":
                cid = CID.decode(request.query_params.get("arg", ""))
                if cid not in fake.blocks:
                    return fake._error("block was not found locally (offline): ipld: could not find node")
                return Response(fake.blocks[cid], media_type="text/plain")
            if cmd == "block/put":
                (data,) = fake._files(request.headers.get("content-type", ""), body)
                cid = cid_for(data, request.query_params.get("cid-codec", "raw"))
                fake.blocks[cid] = data
                return JSONResponse({"Key": str(cid), "Size": len(data)})
            return PlainTextResponse("404 page not found", status_code=404)

        return Starlette(routes=[Route("/api/v0/{cmd:path}", handle, methods=["GET", "POST", "PUT"])])


    def reset(self, mode: str = "ok") -> "FakeKubo":
        self.mode = mode
        self.blocks.clear()
        self.pins.clear()
        self.calls.clear()
        return self


@pytest.fixture(scope="module")
def _kubo_server():
    fake = FakeKubo()
    with BackgroundServer(fake.app) as srv:
        fake.url = srv.url
        yield fake


@pytest.fixture()
def kubo(_kubo_server):
    """A fresh fake Kubo node (one server per module, state reset per test)."""
    return _kubo_server.reset()


def _one_block_car(data: bytes, codec: str = "dag-json"):
    cid = cid_for(data, codec)
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, data)])
    return cid, buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "url,base",
    [
        ("kubo+http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("http://127.0.0.1:5001/", "http://127.0.0.1:5001"),
        ("kubo+https://node.example/api/v0/", "https://node.example"),
    ],
)
def test_kubo_base_url(url, base):
    assert kubo_base_url(url) == base


@pytest.mark.parametrize("url", ["ftp://x", "kubo+", "127.0.0.1:5001", "http://"])
def test_kubo_base_url_rejects(url):
    with pytest.raises(GreenbenchError):
        kubo_base_url(url)


def test_version_and_probe(kubo):
    client = KuboClient("kubo+" + kubo.url)
    assert client.version()["Version"] == "0.29.0"
    assert client.is_kubo()
    assert all(method == "POST" for method, _, _ in kubo.calls)


def test_dag_import_and_pin(kubo):
    cid, car = _one_block_car(b'{"hello":"kubo"}')
    client = KuboClient(kubo.url)
    assert client.dag_import(car) == [str(cid)]
    assert kubo.blocks[cid] == b'{"hello":"kubo"}' and cid in kubo.pins
    assert client.pin_add(str(cid)) == [str(cid)]
    assert client.block_get(str(cid)) == b'{"hello":"kubo"}'
    method, cmd, params = kubo.calls[0]
    assert (method, cmd, params) == ("POST", "dag/import", {"pin-roots": "true"})


def test_block_put(kubo):
    reply = KuboClient(kubo.url).block_put(b"raw bytes")
    assert reply == {"Key": str(cid_for(b"raw bytes")), "Size": 9}
    assert kubo.calls[-1][2] == {"cid-codec": "raw", "mhtype": "sha2-256", "mhlen": "32"}


def test_kubo_error_message_is_passed_on(kubo):
    with pytest.raises(KuboError, match="could not find") as info:
        KuboClient(kubo.url).pin_add(str(cid_for(b"absent")))
    assert info.value.exit_code == 2


def test_corrupt_car_is_refused_by_the_node(kubo):
    cid = cid_for(b"good", "raw")
    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, b"evil")])
    with pytest.raises(KuboError, match="does not match"):
        KuboClient(kubo.url).dag_import(buf.getvalue())
    assert not kubo.blocks


def test_pin_error_is_reported(kubo):
    kubo.mode = "pin-error"
    _, car = _one_block_car(b"{}")
    with pytest.raises(KuboError, match="could not pin"):
        KuboClient(kubo.url).dag_import(car)


def test_not_kubo_endpoint(kubo):
    client = KuboClient(kubo.url + "/elsewhere")
    assert not client.is_kubo()
    with pytest.raises(KuboError, match="not a Kubo RPC endpoint"):
        client.version()


def test_unreachable_names_url_and_fix():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GreenbenchError) as info:
        KuboClient(url, timeout_s=2).version()
    assert url in info.value.message and "ipfs daemon" in info.value.hint


def test_timeout_names_url(kubo):
    kubo.mode = "slow"
    with pytest.raises(GreenbenchError, match="did not answer"):
        KuboClient(kubo.url, timeout_s=0.2).version()


def test_fake_follows_kubo_conventions(kubo):
    import httpx

    r = httpx.get(kubo.url + "/api/v0/version")
    assert r.status_code == 405
    r = httpx.post(kubo.url + "/api/v0/pin/add", params={"arg": "nope!"})
    assert r.status_code == 500 and r.json()["Type"] == "error"
    # the fake really checks hashes
    data = b"x" * 10
    assert hashlib.sha256(data).digest() == cid_for(data).digest
