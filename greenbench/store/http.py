"""The greenbench HTTP server: a trustless IPFS gateway subset over the local store, plus a write API.

Terms:
    trustless gateway: the subset of the IPFS HTTP gateway spec whose every response is verifiable
        by the client: ``GET/HEAD /ipfs/{cid}`` answers either the raw block (``?format=raw`` or
        ``Accept: application/vnd.ipld.raw``) or a CAR (``?format=car`` or
        ``Accept: application/vnd.ipld.car``), never a deserialized file. Blocks are immutable, so
        replies carry ``Cache-Control: public, max-age=29030400, immutable`` and a strong ETag.
    probe: ``/ipfs/bafkqaaa`` is the identity CID of zero bytes; clients request it to check that a
        gateway is alive. Identity CIDs inline their data, so any of them is answered without a
        lookup.
    write API: ``POST /api/v1/results`` takes a DSSE envelope, verifies it (signature and subject
        digest, optionally a trust list) before storing it as a dag-json block and indexing it;
        ``GET /api/v1/results`` lists the index; ``GET /leaderboard`` (HTML) and
        ``GET /api/v1/leaderboard`` rank the results whose block and signature still verify.
        ``POST /api/v0/block/put`` and
        ``/api/v0/dag/import`` speak the Kubo RPC dialect (multipart upload, JSON replies) so IPFS
        tooling can push raw blocks and CARs.

Safety: the server binds 127.0.0.1 unless told otherwise; with a token configured, every write needs
``Authorization: Bearer <token>`` (401 otherwise); bodies are size-capped while they stream (413);
unexpected content types get 415; CIDs are parsed before use (400), so nothing in a URL reaches the
file system; every block is re-verified against its CID before it is served or stored.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from greenbench.errors import GreenbenchError

__all__ = [
    "ServerConfig",
    "create_app",
    "BackgroundServer",
    "read_token",
    "MultipartError",
    "parse_multipart_file",
    "IMMUTABLE",
    "DEFAULT_PORT",
]

MiB = 1024 * 1024
DEFAULT_PORT = 8787
IMMUTABLE = "public, max-age=29030400, immutable"
RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
JSON_TYPES = ("application/json", "application/vnd.dsse.envelope.v1+json", "application/vnd.dsse+json")
TOKEN_ENV = "GREENBENCH_SERVER_TOKEN"


@dataclass
class ServerConfig:
    """What a server instance serves and accepts.

    Attributes:
        store_dir: the local store directory (``--store``; None: ``GREENBENCH_STORE`` or the user data dir).
        token: bearer token that guards writes; None leaves writes open (only sensible on 127.0.0.1).
        trust: did:keys allowed to publish results; None accepts any valid signature.
        max_result_bytes: cap on a ``POST /api/v1/results`` body.
        max_car_bytes: cap on a ``dag/import`` body.
        max_block_bytes: cap on a ``block/put`` body (the store itself takes blocks up to 1 MiB).
    """

    store_dir: str | os.PathLike | None = None
    token: str | None = None
    trust: set[str] | None = None
    max_result_bytes: int = 16 * MiB
    max_car_bytes: int = 256 * MiB
    max_block_bytes: int = MiB + 64 * 1024  # one 1 MiB block plus multipart framing
    store: Any = field(default=None, repr=False)


def read_token(token_file: str | os.PathLike | None = None) -> str | None:
    """The write token: from ``token_file`` if given, else ``GREENBENCH_SERVER_TOKEN``, else None.

    Raises:
        GreenbenchError: the file cannot be read or holds an empty token.
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise GreenbenchError(
                f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}",
                "pass a file holding the bearer token on one line",
            ) from None
        if not token:
            raise GreenbenchError(f"token file {path} is empty", "write the bearer token into it, one line")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


# --------------------------------------------------------------------------- errors


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers or {}


class MultipartError(ValueError):
    """A multipart/form-data body that cannot be parsed."""


class _TooLarge(Exception):
    pass


# --------------------------------------------------------------------------- streaming bodies


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge()
        if chunk:
            yield chunk


def _boundary_of(content_type: str) -> bytes:
    m = re.search(r'boundary=(?:"([^"]+)"|([^;,\s]+))', content_type, re.IGNORECASE)
    if not m:
        raise MultipartError("multipart/form-data without a boundary parameter")
    boundary = (m.group(1) or m.group(2)).encode("latin-1")
    if not 1 <= len(boundary) <= 70:
        raise MultipartError("multipart boundary must be 1 to 70 characters")
    return boundary


async def parse_multipart_file(
    chunks: AsyncIterator[bytes], content_type: str, sink: Callable[[bytes], Any]
) -> dict[str, str]:
    """Stream the single file part of a multipart/form-data body into ``sink``.

    Written for the Kubo RPC uploads (one ``file`` part); the part's bytes are handed to ``sink`` as
    they arrive, so a large CAR never sits in memory whole.

    Returns:
        the part's headers (lower-case names), e.g. ``content-disposition``.

    Raises:
        MultipartError: no boundary, no part, more than one part, or a truncated body.
    """
    boundary = _boundary_of(content_type)
    first = b"--" + boundary
    delim = b"\r\n--" + boundary
    buf = b""
    state = "preamble"
    headers: dict[str, str] = {}
    parts = 0
    async for chunk in chunks:
        buf += chunk
        while True:
            if state == "preamble":
                i = buf.find(first)
                if i < 0:
                    buf = buf[-len(first) :]
                    break
                buf = buf[i + len(first) :]
                state = "after-delim"
            elif state == "after-delim":
                if len(buf) < 2:
                    break
                if buf[:2] == b"--":
                    state = "done"
                    continue
                if buf[:2] != b"\r\n":
                    raise MultipartError("malformed multipart delimiter line")
                buf = buf[2:]
                parts += 1
                if parts > 1:
                    raise MultipartError("expected exactly one file part, got more")
                state = "headers"
            elif state == "headers":
                if len(buf) < 2:
                    break
                if buf[:2] == b"\r\n":  # a part without headers
                    buf = buf[2:]
                    state = "body"
                    continue
                j = buf.find(b"\r\n\r\n")
                if j < 0:
                    if len(buf) > 16 * 1024:
                        raise MultipartError("multipart part headers longer than 16 KiB")
                    break
                for line in buf[:j].split(b"\r\n"):
                    name, sep, value = line.decode("latin-1").partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                buf = buf[j + 4 :]
                state = "body"
            elif state == "body":
                k = buf.find(delim)
                if k < 0:
                    keep = len(delim) - 1
                    if len(buf) > keep:
                        sink(buf[:-keep])
                        buf = buf[-keep:]
                    break
                sink(buf[:k])
                buf = buf[k + len(delim) :]
                state = "after-delim"
            else:  # done: ignore the epilogue
                buf = b""
                break
    if state != "done":
        raise MultipartError("multipart body ended before its closing boundary" if parts else "no file part in the multipart body")
    return headers


# --------------------------------------------------------------------------- the app


def create_app(config: ServerConfig):
    """Build the Starlette application for ``config`` (the store is opened once, here)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from greenbench import signing
    from greenbench.store.cid import CID, IDENTITY
    from greenbench.store.local import open_store
    from greenbench.errors import StoreError, VerificationError

    store = config.store if config.store is not None else open_store(config.store_dir)
    token = config.token.encode("utf-8") if config.token else None
    write_lock = asyncio.Lock()

    def _json_error(exc: _HTTPError, kubo: bool) -> JSONResponse:
        if kubo:
            body = {"Message": exc.message, "Code": 0, "Type": "error"}
        else:
            body = {"error": exc.message}
            if exc.hint:
                body["hint"] = exc.hint
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    def _check_token(request: Request) -> None:
        if token is None:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), token):
            raise _HTTPError(
                401,
                "this server needs a bearer token for writes",
                "send Authorization: Bearer <token> (greenbench publish reads GREENBENCH_SERVER_TOKEN or --token-file)",
                {"WWW-Authenticate": 'Bearer realm="greenbench"'},
            )

    def _media_type(request: Request) -> str:
        return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def _check_declared_length(request: Request, limit: int) -> None:
        cl = request.headers.get("content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise _HTTPError(400, f"bad Content-Length {cl!r}") from None
            if n > limit:
                raise _HTTPError(413, f"body of {n} bytes exceeds the {limit}-byte limit")

    async def _read_all(request: Request, limit: int) -> bytes:
        _check_declared_length(request, limit)
        buf = bytearray()
        try:
            async for chunk in _limited(request.stream(), limit):
                buf += chunk
        except _TooLarge:
            raise _HTTPError(413, f"body exceeds the {limit}-byte limit") from None
        return bytes(buf)

    async def _read_file_part(request: Request, limit: int, spool: Any) -> None:
        if _media_type(request) != "multipart/form-data":
            raise _HTTPError(
                415,
                f"expected multipart/form-data, got {request.headers.get('content-type') or 'no content type'}",
                "upload the data as a multipart file field named 'file', as the Kubo RPC API does",
            )
        _check_declared_length(request, limit)
        try:
            await parse_multipart_file(
                _limited(request.stream(), limit), request.headers["content-type"], spool.write
            )
        except _TooLarge:
            raise _HTTPError(413, f"body exceeds the {limit}-byte limit") from None
        except MultipartError as exc:
            raise _HTTPError(400, f"bad multipart body: {exc}") from None

    def _parse_cid(text: str) -> "CID":
        try:
            return CID.decode(text)
        except StoreError as exc:
            raise _HTTPError(400, exc.message, exc.hint) from None

    # ------------------------------------------------------------------ gateway

    def _wanted_format(request: Request) -> str:
        fmt = request.query_params.get("format")
        if fmt is not None:
            if fmt in ("raw", "car"):
                return fmt
            raise _HTTPError(400, f"unsupported format {fmt!r}: this trustless gateway serves format=raw or format=car")
        accept = request.headers.get("accept", "")
        for item in accept.split(","):
            media = item.split(";", 1)[0].strip().lower()
            if media == RAW_TYPE:
                return "raw"
            if media == CAR_TYPE:
                return "car"
        raise _HTTPError(
            400,
            "no verifiable response type requested",
            f"add ?format=raw or ?format=car, or Accept: {RAW_TYPE} or {CAR_TYPE}",
        )

    async def gateway(request: Request) -> Response:
        try:
            rest = request.path_params["rest"]
            fmt = _wanted_format(request)
            if "/" in rest or not rest:
                raise _HTTPError(400, "only /ipfs/{cid} is supported (no paths inside a DAG)")
            cid = _parse_cid(rest)
            etag = f'"{cid}.{fmt}"'
            headers = {
                "Cache-Control": IMMUTABLE,
                "ETag": etag,
                "X-Content-Type-Options": "nosniff",
                "X-Ipfs-Path": f"/ipfs/{cid}",
                "Vary": "Accept",
            }
            if cid.hash_code == IDENTITY:
                data = cid.digest
            else:
                data = await asyncio.to_thread(_get_verified, store, cid)
                if data is None:
                    raise _HTTPError(404, f"block {cid} is not in this store")
            inm = request.headers.get("if-none-match")
            if inm and etag in [t.strip() for t in inm.split(",")]:
                return Response(status_code=304, headers=headers)
            if fmt == "raw":
                headers["Content-Disposition"] = f'attachment; filename="{cid}.bin"'
                if request.method == "HEAD":
                    headers["Content-Length"] = str(len(data))
                    return Response(status_code=200, headers=headers, media_type=RAW_TYPE)
                return Response(data, status_code=200, headers=headers, media_type=RAW_TYPE)
            headers["Content-Disposition"] = f'attachment; filename="{cid}.car"'
            media = f"{CAR_TYPE}; version=1"
            if request.method == "HEAD":  # the CAR's length is known only by walking the DAG: not sent
                return Response(status_code=200, headers=headers, media_type=media)
            # Streamed block by block (each re-verified as it is read), never held whole in memory. A block
            # that goes missing mid-stream ends the response early: the client sees a truncated CAR.
            from starlette.responses import StreamingResponse

            from greenbench.store.car import car_parts

            blocks = store.walk([cid]) if cid.hash_code != IDENTITY else iter(())
            return StreamingResponse(car_parts([cid], blocks), status_code=200, headers=headers, media_type=media)
        except _HTTPError as exc:
            return _json_error(exc, kubo=False)

    # ------------------------------------------------------------------ write API

    async def post_result(request: Request) -> Response:
        try:
            _check_token(request)
            media = _media_type(request)
            if media not in JSON_TYPES:
                raise _HTTPError(
                    415,
                    f"expected a DSSE envelope as application/json, got {media or 'no content type'}",
                )
            raw = await _read_all(request, config.max_result_bytes)

            def parse_and_verify():
                try:
                    env = signing._loads_strict(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise _HTTPError(400, f"body is not JSON: {exc}") from None
                try:
                    return env, signing.verify_envelope(env, config.trust)
                except VerificationError as exc:
                    raise _HTTPError(422, f"envelope does not verify: {exc.message}") from None
                except GreenbenchError as exc:
                    raise _HTTPError(400, exc.message, exc.hint) from None

            # Off the event loop: a large envelope must not stall every other request while it is checked.
            env, verified = await asyncio.to_thread(parse_and_verify)
            from greenbench.publish import envelope_block

            cid, block = envelope_block(env)
            async with write_lock:
                existed = await asyncio.to_thread(store.has, cid)
                await asyncio.to_thread(_store_result, store, cid, block, verified)
            return JSONResponse(
                {"cid": str(cid), "signer": verified.signer, "sha256": verified.sha256},
                status_code=200 if existed else 201,
                headers={"Location": f"/ipfs/{cid}"},
            )
        except _HTTPError as exc:
            return _json_error(exc, kubo=False)

    async def list_results(request: Request) -> Response:
        filters = dict(request.query_params)
        try:
            rows = await asyncio.to_thread(_query, store, filters)
        except GreenbenchError as exc:
            return _json_error(_HTTPError(400, exc.message, exc.hint), kubo=False)
        except ValueError as exc:
            return _json_error(_HTTPError(400, f"bad filter value: {exc}"), kubo=False)
        return JSONResponse({"results": rows})

    async def block_put(request: Request) -> Response:
        try:
            _check_token(request)
            codec = request.query_params.get("cid-codec") or request.query_params.get("format") or "raw"
            if codec == "v0":
                codec = "dag-pb"
            mhtype = request.query_params.get("mhtype", "sha2-256")
            if mhtype != "sha2-256":
                raise _HTTPError(400, f"unsupported mhtype {mhtype!r}: this server hashes with sha2-256")
            if request.query_params.get("mhlen", "32") not in ("32", "-1"):
                raise _HTTPError(400, "sha2-256 digests are 32 bytes; drop mhlen or set it to 32")
            if codec not in ("raw", "dag-json", "dag-cbor", "dag-pb"):
                raise _HTTPError(400, f"unsupported cid-codec {codec!r}")
            buf = _Bytes()
            await _read_file_part(request, config.max_block_bytes, buf)
            data = bytes(buf.data)
            async with write_lock:
                try:
                    cid = await asyncio.to_thread(_put_block, store, data, codec)
                except GreenbenchError as exc:  # over the block limit, or undecodable for its codec
                    raise _HTTPError(400, exc.message, exc.hint) from None
            return JSONResponse({"Key": str(cid), "Size": len(data)})
        except _HTTPError as exc:
            return _json_error(exc, kubo=True)

    async def dag_import(request: Request) -> Response:
        try:
            _check_token(request)
            with tempfile.TemporaryDirectory(prefix="greenbench-upload-") as tmpdir:
                car_path = Path(tmpdir) / "upload.car"
                with open(car_path, "wb") as spool:
                    await _read_file_part(request, config.max_car_bytes, spool)
                async with write_lock:
                    try:
                        roots = await asyncio.to_thread(_import_car, store, car_path)
                    except GreenbenchError as exc:  # malformed CAR or a block not matching its CID
                        raise _HTTPError(400, exc.message, exc.hint) from None
            lines = [
                _compact({"Root": {"Cid": {"/": str(r)}, "PinErrorMsg": ""}}) for r in roots
            ]
            return Response("".join(line + "\n" for line in lines), media_type="application/json")
        except _HTTPError as exc:
            return _json_error(exc, kubo=True)

    async def kubo_get(request: Request) -> Response:
        return _json_error(_HTTPError(405, f"{request.url.path} only accepts POST (Kubo RPC)"), kubo=True)

    def _leaderboard_rows(request: Request) -> tuple[list, list]:
        from greenbench.publish import load_verified_results

        try:
            from greenbench.leaderboard import build_rows
        except ImportError:
            raise _HTTPError(501, "this greenbench has no leaderboard module") from None
        entries, skipped = load_verified_results(store, config.trust)
        q = request.query_params
        rows = build_rows(entries, method=q.get("method") or None, profile=q.get("profile") or None, skipped=skipped)
        return rows, skipped

    async def leaderboard_json(request: Request) -> Response:
        try:
            rows, skipped = await asyncio.to_thread(_leaderboard_rows, request)
        except _HTTPError as exc:
            return _json_error(exc, kubo=False)
        return JSONResponse({"rows": rows, "skipped": skipped})

    async def leaderboard_html(request: Request) -> Response:
        from starlette.responses import HTMLResponse

        try:
            rows, _ = await asyncio.to_thread(_leaderboard_rows, request)
            from greenbench.leaderboard import render_html
        except _HTTPError as exc:
            return _json_error(exc, kubo=False)
        except ImportError:
            return _json_error(_HTTPError(501, "this greenbench has no HTML leaderboard"), kubo=False)
        return HTMLResponse(
            render_html(rows),
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "service": "greenbench",
                "gateway": "/ipfs/{cid}?format=raw|car",
                "results": "/api/v1/results",
                "leaderboard": "/leaderboard",
                "writes_need_token": token is not None,
            }
        )

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/ipfs/{rest:path}", gateway, methods=["GET", "HEAD"]),
        Route("/api/v1/results", post_result, methods=["POST"]),
        Route("/api/v1/results", list_results, methods=["GET"]),
        Route("/api/v1/leaderboard", leaderboard_json, methods=["GET"]),
        Route("/leaderboard", leaderboard_html, methods=["GET"]),
        Route("/api/v0/block/put", block_put, methods=["POST"]),
        Route("/api/v0/dag/import", dag_import, methods=["POST"]),
        Route("/api/v0/block/put", kubo_get, methods=["GET"]),
        Route("/api/v0/dag/import", kubo_get, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.config = config
    return app


class _Bytes:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> None:
        self.data += chunk


def _compact(doc: Any) -> str:
    import json

    return json.dumps(doc, separators=(",", ":"))


# --------------------------------------------------------------------------- store adapters
# (one place that knows the local store's method names)


def _get_verified(store, cid):
    """The block's bytes, re-verified against ``cid``; None when absent.

    Raises:
        _HTTPError: 500 when the stored bytes no longer match the CID (never served).
    """
    if not store.has(cid):
        return None
    try:
        data = store.get_block(cid)
    except GreenbenchError as exc:
        if not store.has(cid):  # removed meanwhile
            return None
        raise _HTTPError(500, f"stored block {cid} failed verification and is not served: {exc.message}") from None
    if not cid.verify(data):
        raise _HTTPError(500, f"stored block {cid} failed verification and is not served")
    return data


def _put_block(store, data: bytes, codec: str):
    return store.put_block(data, codec=codec)


def _import_car(store, path: Path) -> list:
    return list(store.import_car(path))


def _store_result(store, cid, block: bytes, verified) -> None:
    from greenbench.publish import index_info

    store.put_verified(cid, block)
    store.index_result(cid, index_info(verified))


def _query(store, filters: dict) -> list:
    return list(store.query_results(**filters))


# --------------------------------------------------------------------------- running it


class BackgroundServer:
    """Run an ASGI app on uvicorn in a daemon thread (tests, embedding); ``with`` starts and stops it.

    Args:
        app: the ASGI application.
        host: interface to bind (127.0.0.1 by default).
        port: TCP port; 0 picks a free one (see :attr:`url` after start).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self._config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(self._config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> "BackgroundServer":
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise GreenbenchError(f"server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
