"""A subset of the Kubo RPC API (``/api/v0/...``), enough for Kubo clients and greenbench's own Kubo publisher.

Terms (https://docs.ipfs.tech/reference/kubo/rpc/):
    call: always ``POST /api/v0/<command>``; arguments in the query string (``?arg=CID``), files as
        ``multipart/form-data`` parts; answers are JSON (one object, or one per line for streaming
        commands). Another method gets 405; an unknown command 404, as Kubo answers.
    error: ``{"Message": ..., "Code": 0|1, "Type": "error"}``, HTTP 400 with Code 1 for a bad request
        (missing or malformed argument), HTTP 500 with Code 0 for a failure (a block this node does not
        have, a CAR that does not verify).
    commands: ``version``, ``id``, ``block/get``, ``block/stat``, ``block/put`` (one block per file part;
        ``pin=true`` pins the block itself, as the blocks it links to may not be here),
        ``dag/import`` (one or more CAR parts in one request; ``pin-roots`` defaults to true; ``stats``),
        ``dag/export``, ``pin/add``, ``pin/ls``, ``pin/rm``. Writes (``block/put``, ``dag/import``,
        ``pin/add``, ``pin/rm``) need the server's bearer token when it has one.
    peer identity: this server joins no libp2p network; ``id`` answers with a peer ID made from a fresh
        Ed25519 key per process and no addresses, so clients that parse it keep working.

Everything received is verified before it is stored: a block against its CID, every dag-pb, dag-cbor
and dag-json block decoded (a "hello" sent as dag-pb is refused), a CAR all or nothing.
"""

from __future__ import annotations

import asyncio
import json
import platform
import tempfile
from pathlib import Path

from greenbench.errors import GreenbenchError, VerificationError
from greenbench.server.common import HTTPError, StreamAborted, error_response, parse_cid, read_parts

__all__ = ["routes", "COMMANDS"]

_CODECS = {"raw": "raw", "dag-json": "dag-json", "dag-cbor": "dag-cbor", "dag-pb": "dag-pb", "v0": "dag-pb",
           "protobuf": "dag-pb", "cbor": "dag-cbor", "json": "dag-json"}
_MAX_PARTS = 1000


def routes():
    from starlette.routing import Route

    out = []
    for name, handler in COMMANDS.items():
        out.append(Route(f"/api/v0/{name}", handler, methods=["POST"]))
        out.append(Route(f"/api/v0/{name}", _wrong_method, methods=["GET", "HEAD", "PUT", "DELETE", "PATCH"]))
    out.append(Route("/api/v0/{rest:path}", _unknown, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]))
    return out


def _kubo(handler):
    """Wrap a command: HTTPError -> Kubo error body; a store error -> 500 with its message."""

    async def run(request):
        ctx = request.app.state.ctx
        try:
            return await handler(request, ctx)
        except HTTPError as exc:
            return error_response(ctx, exc, kubo=True)
        except GreenbenchError as exc:
            return error_response(ctx, HTTPError(500, exc.message), kubo=True)

    run.__name__ = handler.__name__
    return run


async def _wrong_method(request):
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("405 - Method Not Allowed (the Kubo RPC takes POST)", status_code=405, headers={"Allow": "POST"})


async def _unknown(request):
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("404 page not found", status_code=404)


def _args(request, required: bool = True) -> list[str]:
    args = request.query_params.getlist("arg")
    if required and not args:
        raise HTTPError(400, 'argument "cid" is required')
    return args


def _flag(request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise HTTPError(400, f"{name}={value[:20]!r} is not a boolean (true or false)")


def _ndjson(items) -> str:
    return "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)


def _json(doc, status: int = 200):
    from starlette.responses import Response

    return Response(json.dumps(doc, separators=(",", ":")) + "\n", status_code=status, media_type="application/json")


def _cid_arg(text: str):
    if text.startswith("/ipfs/"):
        text = text[len("/ipfs/") :]
    return parse_cid(text.rstrip("/"))


def _not_here(cid) -> HTTPError:
    return HTTPError(500, f"block was not found locally (offline): ipld: could not find {cid}")


# --------------------------------------------------------------------------- node


@_kubo
async def version(request, ctx):
    from greenbench import __version__

    return _json(
        {
            "Version": __version__,
            "Commit": "",
            "Repo": "",
            "System": f"{platform.machine().lower()}/{platform.system().lower()}",
            "Golang": "",
            "Greenbench": __version__,  # how `greenbench publish` tells a greenbench server from Kubo
        }
    )


_IDENTITY: dict = {}


def _peer() -> tuple[str, str]:
    """``(peer ID, base64 protobuf public key)`` of this process (module docstring)."""
    if not _IDENTITY:
        import base64

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from greenbench.store import multiformats as mf

        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        proto = b"\x08\x01\x12\x20" + raw  # libp2p PublicKey{Type: Ed25519, Data: 32 bytes}
        _IDENTITY["id"] = mf.b58encode(b"\x00" + bytes([len(proto)]) + proto)  # identity multihash
        _IDENTITY["key"] = base64.b64encode(proto).decode()
    return _IDENTITY["id"], _IDENTITY["key"]


@_kubo
async def id_(request, ctx):
    from greenbench import __version__

    if request.query_params.getlist("arg"):
        raise HTTPError(500, "this greenbench server has no peer network: it knows no other peer")
    peer, key = _peer()
    return _json({"ID": peer, "PublicKey": key, "Addresses": [], "AgentVersion": f"greenbench/{__version__}", "Protocols": []})


# --------------------------------------------------------------------------- blocks


def _get(ctx, cid) -> bytes:
    from greenbench.store.local import BlockNotFoundError

    try:
        return ctx.store.get_block(cid)
    except BlockNotFoundError:
        raise _not_here(cid) from None
    except VerificationError:
        raise HTTPError(500, f"stored block {cid} failed verification and is not served") from None


@_kubo
async def block_get(request, ctx):
    from starlette.responses import Response

    cid = _cid_arg(_args(request)[0])
    data = await asyncio.to_thread(_get, ctx, cid)
    return Response(data, media_type="application/octet-stream", headers={"X-Content-Type-Options": "nosniff"})


@_kubo
async def block_stat(request, ctx):
    cid = _cid_arg(_args(request)[0])
    size = await asyncio.to_thread(ctx.store.block_size, cid)
    if size is None:
        raise _not_here(cid)
    return _json({"Key": str(cid), "Size": size})


class _Parts:
    """Collects uploaded parts in memory (blocks: each at most the block limit)."""

    def __init__(self) -> None:
        self.parts: list[bytearray] = []

    def open(self, headers):
        buf = bytearray()
        self.parts.append(buf)
        return buf.extend


@_kubo
async def block_put(request, ctx):
    ctx.check_token(request)
    q = request.query_params
    codec = _CODECS.get(q.get("cid-codec") or q.get("format") or "raw")
    if codec is None:
        raise HTTPError(400, f"unsupported cid-codec {(q.get('cid-codec') or q.get('format'))[:40]!r}")
    if q.get("mhtype", "sha2-256") != "sha2-256":
        raise HTTPError(400, f"unsupported mhtype {q.get('mhtype')[:40]!r}: this server hashes with sha2-256")
    if q.get("mhlen", "32") not in ("32", "-1"):
        raise HTTPError(400, "sha2-256 digests are 32 bytes; drop mhlen or set it to 32")
    pin = _flag(request, "pin", False)
    parts = _Parts()
    await read_parts(request, ctx.config.max_block_bytes, parts.open, max_parts=_MAX_PARTS)

    def put():
        cids = [ctx.store.put_block(bytes(p), codec=codec) for p in parts.parts]
        if pin:
            ctx.store.pin(cids, recursive=False)
        return cids

    async with ctx.write_lock:
        try:
            cids = await asyncio.to_thread(put)
        except GreenbenchError as exc:  # over the block limit, or undecodable for its codec
            raise HTTPError(400, exc.message, exc.hint) from None
    from starlette.responses import Response

    body = _ndjson({"Key": str(c), "Size": len(p)} for c, p in zip(cids, parts.parts))
    return Response(body, media_type="application/json")


# --------------------------------------------------------------------------- DAGs


class _Spool:
    """Each uploaded CAR part in a temporary file of its own (removed afterwards)."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.files: list[Path] = []
        self._fh = None

    def open(self, headers):
        if self._fh is not None:
            self._fh.close()
        path = Path(self.dir) / f"part-{len(self.files)}.car"
        self.files.append(path)
        self._fh = open(path, "wb")
        return self._fh.write

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@_kubo
async def dag_import(request, ctx):
    from greenbench.store.local import BlockNotFoundError

    ctx.check_token(request)
    pin_roots = _flag(request, "pin-roots", True)
    stats = _flag(request, "stats", False)
    with tempfile.TemporaryDirectory(prefix="greenbench-upload-") as tmpdir:
        spool = _Spool(tmpdir)
        try:
            await read_parts(request, ctx.config.max_car_bytes, spool.open, max_parts=_MAX_PARTS)
        finally:
            spool.close()

        def run():
            roots, blocks, nbytes = [], 0, 0
            for path in spool.files:  # each CAR all or nothing; pins only once every one imported
                result = ctx.store.import_car(path, max_bytes=ctx.config.max_car_bytes)
                roots += [r for r in result if r not in roots]
                blocks += result.blocks
                nbytes += result.bytes
            if pin_roots and roots:
                ctx.store.pin(roots, recursive=True)
            return roots, blocks, nbytes

        async with ctx.write_lock:
            try:
                roots, blocks, nbytes = await asyncio.to_thread(run)
            except BlockNotFoundError as exc:  # a root to pin whose DAG the CARs did not complete
                raise HTTPError(500, f"pinning the roots: {exc.message}") from None
            except GreenbenchError as exc:  # the upload was bad: malformed CAR, a block not matching its CID
                raise HTTPError(400, exc.message, exc.hint) from None
    from starlette.responses import Response

    lines = [{"Root": {"Cid": {"/": str(r)}, "PinErrorMsg": ""}} for r in roots]
    if stats:
        lines.append({"Stats": {"BlockCount": blocks, "BlockBytesCount": nbytes}})
    return Response(_ndjson(lines), media_type="application/json")


@_kubo
async def dag_export(request, ctx):
    from starlette.responses import StreamingResponse

    from greenbench.store.car import car_parts
    from greenbench.server.gateway import _threaded

    cid = _cid_arg(_args(request)[0])
    store = ctx.store

    def plan():
        from greenbench.store import dag

        try:
            cids, _ = dag.select(store.get_block, cid, [], "all")
        except VerificationError:
            raise HTTPError(500, f"a block under {cid} failed verification and is not served") from None
        except GreenbenchError as exc:
            raise HTTPError(500, exc.message) from None
        for c in cids:  # every block there before a byte is sent
            if store.block_size(c) is None:
                raise _not_here(c)
        return cids

    cids = await asyncio.to_thread(plan)
    log = ctx.config.log

    def blocks():
        for c in cids:
            try:
                yield c, store.get_block(c)
            except GreenbenchError as exc:  # damaged since the plan: end the connection, the CAR short
                if log is not None:
                    log(f"dag/export of {cid} stopped short: {ctx.public(exc.message)}")
                raise StreamAborted(str(c)) from None

    return StreamingResponse(_threaded(car_parts([cid], blocks())), media_type="application/vnd.ipld.car")


# --------------------------------------------------------------------------- pins


@_kubo
async def pin_add(request, ctx):
    ctx.check_token(request)
    cids = [_cid_arg(a) for a in _args(request)]
    recursive = _flag(request, "recursive", True)
    async with ctx.write_lock:
        try:
            await asyncio.to_thread(ctx.store.pin, cids, recursive)
        except GreenbenchError as exc:
            raise HTTPError(500, f"pin: {exc.message}") from None
    return _json({"Pins": [str(c) for c in cids]})


def _pin_types(store) -> dict[str, str]:
    """``{cid: type}`` of every pinned CID: recursive and direct pins, and the blocks recursive pins
    reach (``indirect``)."""
    out: dict[str, str] = {}
    recursive = []
    for cid, rec in store.pins():
        out[str(cid)] = "recursive" if rec else "direct"
        if rec:
            recursive.append(cid)
    for root in recursive:
        try:
            for cid, _ in store.walk([root]):
                out.setdefault(str(cid), "indirect")
        except GreenbenchError:
            continue
    return out


@_kubo
async def pin_ls(request, ctx):
    kind = request.query_params.get("type", "all")
    if kind not in ("all", "recursive", "direct", "indirect"):
        raise HTTPError(400, f"invalid type {kind[:20]!r}, must be one of all, recursive, direct, indirect")
    wanted = [_cid_arg(a) for a in _args(request, required=False)]
    types = await asyncio.to_thread(_pin_types, ctx.store)
    if wanted:
        keys = {}
        for cid in wanted:
            t = types.get(str(cid)) or types.get(str(cid.to_v1()))
            if t is None or (kind != "all" and t != kind):
                raise HTTPError(500, f"path '{cid}' is not pinned")
            keys[str(cid)] = t
    else:
        keys = {c: t for c, t in types.items() if kind == "all" or t == kind}
    if _flag(request, "stream", False):
        from starlette.responses import Response

        return Response(_ndjson({"Cid": c, "Type": t} for c, t in keys.items()), media_type="application/json")
    return _json({"Keys": {c: {"Type": t} for c, t in keys.items()}})


@_kubo
async def pin_rm(request, ctx):
    ctx.check_token(request)
    cids = [_cid_arg(a) for a in _args(request)]
    async with ctx.write_lock:
        for cid in cids:
            if not await asyncio.to_thread(ctx.store.unpin, cid):
                raise HTTPError(500, f"{cid} is not pinned or pinned indirectly")
    return _json({"Pins": [str(c) for c in cids]})


COMMANDS = {
    "version": version,
    "id": id_,
    "block/get": block_get,
    "block/stat": block_stat,
    "block/put": block_put,
    "dag/import": dag_import,
    "dag/export": dag_export,
    "pin/add": pin_add,
    "pin/ls": pin_ls,
    "pin/rm": pin_rm,
}
