"""Hardening of `greenbench serve`, found by abusing a default server: browser writes and DNS rebinding,
slow and greedy clients, aborted uploads, bad query values, paths in error bodies, access log."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from greenbench.errors import GreenbenchError
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store.cid import cid_for
from greenbench.store.local import CHUNK_SIZE, LocalStore
from greenbench.store.remote import ServerClient

EVIL = "https://evil.example"


def client_for(tmp_path, **cfg) -> TestClient:
    store = LocalStore(tmp_path / "store")
    c = TestClient(create_app(ServerConfig(store=store, **cfg)))
    c.store = store
    return c


# ----------------------------------------------------------------------------- Origin and Host


@pytest.mark.parametrize(
    "path,kw",
    [
        ("/api/v0/block/put", {"files": {"file": ("x", b"from a web page")}}),
        ("/api/v1/results", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),  # a CORS "simple" request
        (f"/api/v0/pin/add?arg={cid_for(b'x')}", {}),
    ],
)
def test_browser_pages_cannot_write(tmp_path, path, kw):
    c = client_for(tmp_path)
    headers = {**kw.pop("headers", {}), "Origin": EVIL}
    r = c.post(path, headers=headers, **kw)
    assert r.status_code == 403 and "--cors-origin" in r.json()["hint"]
    assert "access-control-allow-origin" not in r.headers
    assert list(c.store.iter_cids()) == []
    no_origin = {k: v for k, v in headers.items() if k != "Origin"}
    cross = c.post(path, headers={**no_origin, "Sec-Fetch-Site": "cross-site"}, **kw)
    assert cross.status_code == 403


def test_allowed_origins_get_cors_answers(tmp_path):
    c = client_for(tmp_path, cors_origins=("https://lab.example",))
    r = c.post("/api/v0/block/put", files={"file": ("x", b"allowed")}, headers={"Origin": "https://lab.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://lab.example"
    pre = c.options("/api/v0/block/put", headers={"Origin": "https://lab.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and "POST" in pre.headers["access-control-allow-methods"]
    assert c.options("/api/v0/block/put", headers={"Origin": EVIL}).status_code == 403
    same = c.post("/api/v0/block/put", files={"file": ("x", b"own page")}, headers={"Origin": "http://testserver"})
    assert same.status_code == 200  # the server's own pages may write
    read = c.get(f"/ipfs/{cid_for(b'allowed')}?format=raw", headers={"Origin": EVIL})
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == "*"  # public, verifiable reads


def test_dns_rebinding_is_refused_on_a_real_socket(tmp_path):
    store = LocalStore(tmp_path / "store")
    app = create_app(ServerConfig(store=store, allow_hosts=("gb.internal",), public_urls=("https://results.example.org",)))
    with BackgroundServer(app) as srv:
        port = srv.port
        for host, ok in (
            (f"127.0.0.1:{port}", True),
            (f"localhost:{port}", True),
            (f"evil.example:{port}", False),  # a page that points its own name at 127.0.0.1
            ("evil.example", False),
            (f"127.0.0.1:{port + 1}", False),
            (f"gb.internal:{port}", True),
            ("results.example.org", True),
        ):
            for method in ("GET", "POST"):
                r = httpx.request(method, f"{srv.url}/api/v0/version", headers={"Host": host})
                expected = (200 if method == "POST" else 405) if ok else 403
                assert r.status_code == expected, (host, method, r.status_code)


def test_bad_config_urls_are_refused(tmp_path):
    with pytest.raises(GreenbenchError, match="not an http"):
        create_app(ServerConfig(store=LocalStore(tmp_path / "s"), cors_origins=("lab.example",)))


# ----------------------------------------------------------------------------- slow and greedy clients


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def _closed_within(s: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open that long."""
    s.settimeout(seconds)  # per recv: a server that answers but keeps the connection open fails this
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return got


def test_slow_headers_are_cut_off(tmp_path):
    lines = []
    app = create_app(ServerConfig(store=LocalStore(tmp_path / "s"), header_timeout_s=0.5, log=lines.append))
    with BackgroundServer(app) as srv:
        socks = [_connect(srv.port) for _ in range(30)]
        for s in socks:
            s.sendall(b"GET /ipfs/bafkqaaa?format=raw HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        t0 = time.monotonic()
        answers = [_closed_within(s, 5) for s in socks]
        assert all(a is not None and a.startswith(b"HTTP/1.1 408") for a in answers)
        assert time.monotonic() - t0 < 4
        # a kept-alive connection gets the same time for its next request's headers
        s = _connect(srv.port)
        s.sendall(f"GET /ipfs/bafkqaaa?format=raw HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode())
        time.sleep(0.2)
        s.sendall(b"GET / HTTP/1.1\r\n")
        reply = _closed_within(s, 5)
        assert reply is not None and b"200 OK" in reply and reply.endswith(b"Content-Length: 0\r\n\r\n")
    assert sum("no complete request headers" in line for line in lines) == 31


def test_slow_bodies_get_408_and_one_log_line(tmp_path):
    lines = []
    app = create_app(ServerConfig(store=LocalStore(tmp_path / "s"), body_timeout_s=0.5, log=lines.append))
    with BackgroundServer(app) as srv:
        s = _connect(srv.port)
        s.sendall(
            f"POST /api/v0/block/put HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Length: 1000\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n".encode()
        )
        reply = _closed_within(s, 3)  # answered and closed well before uvicorn's 5 s keep-alive
        assert reply is not None and reply.startswith(b"HTTP/1.1 408") and b"connection: close" in reply.lower()
    assert [line for line in lines if "block/put" in line][0].endswith("(no request body for 0.5 s)")


def test_per_client_limits(tmp_path):
    lines = []
    app = create_app(
        ServerConfig(
            store=LocalStore(tmp_path / "s"), max_requests_per_client=2, max_connections_per_client=4, log=lines.append
        )
    )
    with BackgroundServer(app) as srv:
        hold = []
        for _ in range(2):  # two uploads in flight, their bodies still coming
            s = _connect(srv.port)
            s.sendall(
                f"POST /api/v1/results HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\n\r\n{".encode()
            )
            hold.append(s)
        time.sleep(0.3)
        r = httpx.get(f"{srv.url}/ipfs/bafkqaaa?format=raw")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        extra = [_connect(srv.port) for _ in range(2)]  # 4 connections open now (the httpx one closed)
        refused = _connect(srv.port)
        assert _closed_within(refused, 5) == b""  # the fifth is closed at once
        for s in hold + extra:
            s.close()
        time.sleep(0.3)
        assert httpx.get(f"{srv.url}/ipfs/bafkqaaa?format=raw").status_code == 200
    assert any("more than 4 connections" in line for line in lines)


def test_an_aborted_upload_is_one_log_line_not_a_traceback(tmp_path, capfd):
    lines = []
    app = create_app(ServerConfig(store=LocalStore(tmp_path / "s"), log=lines.append))
    with BackgroundServer(app) as srv:
        s = _connect(srv.port)
        s.sendall(
            f"POST /api/v0/dag/import HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Length: 100000\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n\r\n".encode() + b"x" * 5000
        )
        time.sleep(0.2)
        s.close()  # the client gives up mid-upload
        for _ in range(50):
            if any("dag/import" in line for line in lines):
                break
            time.sleep(0.05)
    (line,) = [line for line in lines if "dag/import" in line]
    assert line.endswith("(client went away during the upload)")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err


# ----------------------------------------------------------------------------- bad values, error bodies


@pytest.mark.parametrize(
    "query", ["limit=100000000000000000000", "limit=-1", "offset=-5", "limit=ten", "offset=1e400", "max_j_per_token=nan"]
)
def test_results_query_values_out_of_range_are_400(tmp_path, query):
    r = client_for(tmp_path).get(f"/api/v1/results?{query}")
    assert r.status_code == 400 and "error" in r.json()


def test_results_paging(tmp_path):
    c = client_for(tmp_path)
    for i in range(5):
        cid = c.store.put_block(b"result %d" % i)
        c.store.index_result(cid, {"created": f"2024-01-0{i + 1}", "profile": "p"})
    page = c.get("/api/v1/results?limit=2&offset=1").json()["results"]
    assert [r["created"] for r in page] == ["2024-01-02", "2024-01-03"]


def test_error_bodies_never_show_server_paths(tmp_path):
    c = client_for(tmp_path)
    data = bytes(range(256)) * 4096
    root = c.store.put_file(__import__("io").BytesIO(data))
    (pack,) = (c.store.root / "packs").iterdir()
    with open(pack, "r+b") as fh:
        fh.write(b"!")
    leaf = cid_for(data[:CHUNK_SIZE])
    answers = [
        c.get(f"/ipfs/{leaf}?format=raw"),
        c.get(f"/ipfs/{leaf}?format=car"),
        c.post(f"/api/v0/block/get?arg={leaf}"),
    ]
    pack.unlink()
    answers += [c.get(f"/ipfs/{leaf}?format=raw"), c.post(f"/api/v0/pin/add?arg={root}")]
    for r in answers:
        assert r.status_code == 500, r.text
        assert str(tmp_path) not in r.text and "/tmp" not in r.text, r.text


# ----------------------------------------------------------------------------- access log, start-up


def test_one_access_log_line_per_request(tmp_path):
    lines = []
    c = client_for(tmp_path, log=lines.append)
    c.get("/ipfs/bafkqaaa?format=raw")
    c.post("/api/v0/version")
    c.get("/ipfs/bafkqaaa")
    assert len(lines) == 3
    assert lines[0].startswith('testclient "GET /ipfs/bafkqaaa?format=raw HTTP/1.1" 200 0 ')
    assert '"POST /api/v0/version HTTP/1.1" 200' in lines[1] and '" 400 ' in lines[2]


# ----------------------------------------------------------------------------- leaderboard --from bounds


def test_server_client_bounds_reply_size_and_total_time():
    big = httpx.MockTransport(lambda req: httpx.Response(200, content=b"[" + b" " * 5000 + b"]"))
    with pytest.raises(GreenbenchError, match="more than the 1000"):
        ServerClient("http://h:1", transport=big, max_reply_bytes=1000).results()
    block = httpx.MockTransport(lambda req: httpx.Response(200, content=b"x" * (3 << 20)))
    with pytest.raises(GreenbenchError, match="more than the 2097152 expected"):
        ServerClient("http://h:1", transport=block).get_block(cid_for(b"x"))

    def slow(req):
        time.sleep(0.3)
        return httpx.Response(200, json={"results": []})

    c = ServerClient("http://h:1", transport=httpx.MockTransport(slow), deadline_s=0.5)
    c.results()  # within the deadline
    with pytest.raises(GreenbenchError, match="gave up after 0.5 s"):
        c.results()


def test_the_pure_python_parser_gets_the_same_guards(tmp_path, monkeypatch):
    """Without httptools, uvicorn's h11 protocol carries the header timeout and connection limit."""
    import builtins

    real_import = builtins.__import__

    def no_httptools(name, *args, **kwargs):
        if name.startswith("uvicorn.protocols.http.httptools_impl"):
            raise ImportError("no httptools here")
        return real_import(name, *args, **kwargs)

    lines = []
    app = create_app(ServerConfig(store=LocalStore(tmp_path / "s"), header_timeout_s=0.5, log=lines.append))
    monkeypatch.setattr(builtins, "__import__", no_httptools)
    srv = BackgroundServer(app)  # the protocol class is chosen here
    monkeypatch.undo()
    assert [c.__name__ for c in srv._config.http.__mro__][1] == "H11Protocol"
    with srv:
        s = _connect(srv.port)
        s.sendall(b"GET /ipfs/bafkqaaa?format=raw HTTP/1.1\r\n")
        assert (_closed_within(s, 5) or b"").startswith(b"HTTP/1.1 408")
        r = httpx.get(f"{srv.url}/ipfs/bafkqaaa?format=raw")
        assert r.status_code == 200 and r.content == b""
    assert any("no complete request headers" in line for line in lines)


def test_corked_writes_leave_in_one_send():
    import asyncio

    from greenbench.server.runner import _Corked

    class Transport:
        def __init__(self):
            self.writes = []

        def write(self, data):
            self.writes.append(bytes(data))

        def is_closing(self):
            return False

        def close(self):
            self.writes.append(b"<close>")

    async def main():
        t = Transport()
        corked = _Corked(t, asyncio.get_running_loop())
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert t.writes == []  # nothing sent in the middle of a step
        await asyncio.sleep(0)
        assert t.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        corked.write(b"x" * (64 * 1024))  # large: at once
        assert t.writes[-1] == b"x" * (64 * 1024)
        corked.write(b"tail")
        corked.close()  # flushed before the close
        assert t.writes[-2:] == [b"tail", b"<close>"]

    asyncio.run(main())
