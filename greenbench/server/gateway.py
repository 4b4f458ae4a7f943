"""The trustless gateway: ``GET``/``HEAD /ipfs/{cid}[/{path}]`` answered with verifiable bytes only.

Terms (https://specs.ipfs.tech/http-gateways/trustless-gateway/):
    response format: a raw block (``?format=raw`` or ``Accept: application/vnd.ipld.raw``; only
        ``/ipfs/{cid}``, no path) or a CAR (``?format=car`` or ``Accept: application/vnd.ipld.car``),
        never deserialized content; no format asked for is a 400. ``format`` wins over ``Accept``.
        When ``Accept`` chose the format, ``Content-Location`` names the URL with ``format=`` in it.
    CAR parameters: ``version=1`` (the only one; ``2`` is refused with 406), ``order=dfs`` (always: blocks
        come depth first, the order a client can verify as it reads), ``dups=n`` (default: each block
        once) or ``dups=y`` (every occurrence). They come from ``Accept`` media-type parameters or the
        ``car-version``/``car-order``/``car-dups`` query parameters (which win), and are always stated
        in the answer's ``Content-Type``. ``dag-scope`` and ``entity-bytes`` choose the blocks
        (:mod:`greenbench.store.dag`); a bad value is a 400.
    caching: blocks are immutable, so answers carry ``Cache-Control: public, max-age=29030400,
        immutable`` and a strong ETag (``"{cid}.raw"``; for a CAR, one that also covers path, scope,
        bytes and dups); ``If-None-Match`` with it gives 304. ``Cache-Control: only-if-cached`` on a
        block this store does not have gives 412. ``Range`` on a raw block gives 206 (or 416).
    probe: ``/ipfs/bafkqaaa`` (the identity CID of zero bytes) is answered without a lookup, as every
        identity CID is.

Every block is re-verified against its CID as it is read: a damaged block is never served (a raw
answer is a 500; a CAR already under way stops short, so its ``Content-Length`` tells the client).
``HEAD`` sends the headers ``GET`` would, ``Content-Length`` included.
"""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import quote, urlencode

from greenbench.errors import GreenbenchError, StoreError, VerificationError
from greenbench.server.common import CAR_TYPE, IMMUTABLE, RAW_TYPE, HTTPError, StreamAborted, error_response, parse_cid

__all__ = ["routes"]

_CAR_PARAMS = ("version", "order", "dups")


def routes():
    from starlette.routing import Route

    return [Route("/ipfs/{rest:path}", gateway, methods=["GET", "HEAD"])]


# --------------------------------------------------------------------------- negotiation


def _parse_accept(header: str) -> list[tuple[str, dict[str, str], float]]:
    """Media ranges of an Accept header, best first: ``(type, params, q)``."""
    out = []
    for n, item in enumerate(header.split(",")):
        fields = [f.strip() for f in item.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        params, q = {}, 1.0
        for f in fields[1:]:
            key, _, value = f.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"').lower()
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[key] = value
        if q > 0:
            out.append((media, params, q, n))
    out.sort(key=lambda x: (-x[2], x[3]))
    return [(m, p, q) for m, p, q, _ in out]


def _car_ok(params: dict[str, str]) -> bool:
    return (
        params.get("version", "1") == "1"
        and params.get("order", "dfs") in ("dfs", "unk", "")
        and params.get("dups", "n") in ("y", "n")
    )


def _negotiate(request) -> tuple[str, dict[str, str], bool]:
    """``(format, CAR params, chosen by Accept)`` for a request.

    Raises:
        HTTPError: 400 when no verifiable format was asked for, 406 when only CAR variants this gateway
            cannot produce were.
    """
    q = request.query_params
    fmt = q.get("format")
    params: dict[str, str] = {}
    by_accept = False
    accepted = _parse_accept(request.headers.get("accept", ""))
    if fmt is not None:
        if fmt not in ("raw", "car"):
            raise HTTPError(
                400, f"unsupported format {fmt[:40]!r}: this trustless gateway serves format=raw or format=car"
            )
        if fmt == "car":
            for media, p, _ in accepted:
                if media == CAR_TYPE and _car_ok(p):
                    params = p
                    break
    else:
        asked = False
        for media, p, _ in accepted:
            if media == RAW_TYPE:
                fmt, by_accept = "raw", True
                break
            if media == CAR_TYPE:
                asked = True
                if _car_ok(p):
                    fmt, params, by_accept = "car", p, True
                    break
        if fmt is None:
            if asked:
                raise HTTPError(
                    406,
                    "this gateway answers only application/vnd.ipld.car; version=1 (order=dfs or unk, dups=y or n)",
                    "ask for a CAR version 1, or for application/vnd.ipld.raw",
                )
            raise HTTPError(
                400,
                "no verifiable response type requested",
                f"add ?format=raw or ?format=car, or Accept: {RAW_TYPE} or {CAR_TYPE}",
            )
    if fmt == "car":
        for name in _CAR_PARAMS:
            value = q.get(f"car-{name}")
            if value is not None:
                params = {**params, name: value.lower()}
        if not _car_ok(params):
            raise HTTPError(
                400 if any(f"car-{n}" in q for n in _CAR_PARAMS) else 406,
                f"unsupported CAR parameters {params}: this gateway writes version=1, order=dfs, dups=y or n",
            )
    return fmt, params, by_accept


def _split(rest: str) -> tuple[str, list[str]]:
    parts = rest.split("/")
    cid_text, segments = parts[0], [p for p in parts[1:] if p != ""]
    if not cid_text:
        raise HTTPError(400, "no CID in the path", "ask for /ipfs/{cid}")
    if any(p in (".", "..") for p in segments):
        raise HTTPError(400, "'.' and '..' are not names inside a DAG")
    return cid_text, segments


def _location(request, rest: str, fmt: str, params: dict[str, str]) -> str:
    query = dict(request.query_params)
    query["format"] = fmt
    if fmt == "car" and params.get("dups") == "y":
        query.setdefault("car-dups", "y")
    return f"/ipfs/{quote(rest)}?{urlencode(sorted(query.items()))}"


# --------------------------------------------------------------------------- the route


async def gateway(request):
    ctx = request.app.state.ctx
    try:
        return await _answer(request, ctx)
    except HTTPError as exc:
        return error_response(ctx, exc)


async def _answer(request, ctx):
    from greenbench.store.cid import IDENTITY

    rest = request.path_params["rest"]
    cid_text, segments = _split(rest)
    fmt, params, by_accept = _negotiate(request)
    cid = parse_cid(cid_text)
    if fmt == "raw" and segments:
        raise HTTPError(
            400, "raw blocks are served for /ipfs/{cid} only, without a path", "ask for ?format=car to resolve a path"
        )
    store = ctx.store
    size = None if cid.hash_code == IDENTITY else store.block_size(cid)  # a stat or an index lookup: inline
    if cid.hash_code != IDENTITY and size is None:
        if "only-if-cached" in request.headers.get("cache-control", "").lower():
            from starlette.responses import Response

            return Response(status_code=412)
        raise HTTPError(404, f"block {cid} is not in this store")
    headers = {
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "X-Ipfs-Path": f"/ipfs/{quote(rest)}",
        "Vary": "Accept",
    }
    if by_accept:
        headers["Content-Location"] = _location(request, rest, fmt, params)
    if fmt == "raw":
        return await _raw(request, ctx, cid, headers, size)
    return await _car(request, ctx, cid, segments, params, headers)


def _not_modified(request, etag: str, headers: dict):
    from starlette.responses import Response

    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return Response(status_code=304, headers={**headers, "ETag": etag})
    return None


def _read_block(store, cid) -> bytes:
    from greenbench.store.local import BlockNotFoundError

    try:
        return store.get_block(cid)
    except BlockNotFoundError:
        raise HTTPError(404, f"block {cid} is not in this store") from None
    except VerificationError:
        raise HTTPError(500, f"stored block {cid} failed verification and is not served") from None
    except GreenbenchError as exc:
        raise HTTPError(500, f"cannot read block {cid}: {exc.message}") from None


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, stop)`` of a single ``bytes=`` range, None to ignore the header, ``"unsatisfiable"``."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None  # absent, another unit, or several ranges: answered whole (RFC 9110 allows ignoring it)
    first, sep, last = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size
        start = int(first)
        stop = size if last == "" else int(last) + 1
        if last == "" and start >= size:
            return "unsatisfiable"
    except ValueError:
        return None
    if start < 0 or stop <= start:
        return None  # not a valid range (RFC 9110: ignore the header)
    if start >= size:
        return "unsatisfiable"
    return start, min(stop, size)


#: Blocks up to this size are read on the event loop (one small read from the page cache costs less than
#: the two thread hand-offs it would otherwise take; tests/benchmarks/bench_server.py); larger ones in a thread.
INLINE_READ_BYTES = 64 * 1024


async def _raw(request, ctx, cid, headers, size):
    from starlette.responses import Response

    etag = f'"{cid}.raw"'
    headers.update({"ETag": etag, "Content-Disposition": f'attachment; filename="{cid}.bin"', "Accept-Ranges": "bytes"})
    cached = _not_modified(request, etag, headers)
    if cached is not None:
        return cached
    if size is not None and size <= INLINE_READ_BYTES:
        data = _read_block(ctx.store, cid)
    else:
        data = await asyncio.to_thread(_read_block, ctx.store, cid)
    status = 200
    want = _byte_range(request.headers.get("range"), len(data))
    if_range = request.headers.get("if-range")
    if want is not None and if_range is not None and if_range.strip() != etag:
        want = None  # the client's copy is another one: send it whole
    if want == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    if want is not None:
        start, stop = want
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        data, status = data[start:stop], 206
    headers["Content-Length"] = str(len(data))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=RAW_TYPE)
    return Response(data, status_code=status, headers=headers, media_type=RAW_TYPE)


async def _car(request, ctx, cid, segments, params, headers):
    from starlette.responses import Response, StreamingResponse

    from greenbench.store import dag
    from greenbench.store.car import car_parts
    from greenbench.store.cid import IDENTITY
    from greenbench.store.local import BlockNotFoundError

    q = request.query_params
    scope = q.get("dag-scope", "all")
    if scope not in dag.SCOPES:
        raise HTTPError(400, f"dag-scope={scope[:40]!r} is not one of block, entity, all")
    entity_bytes = None
    if "entity-bytes" in q:
        try:
            entity_bytes = dag.parse_entity_bytes(q["entity-bytes"])
        except StoreError as exc:
            raise HTTPError(400, exc.message, exc.hint) from None
    dups = params.get("dups") == "y"
    variant = f"{'/'.join(segments)}|{scope}|{q.get('entity-bytes', '')}|dups={'y' if dups else 'n'}"
    etag = f'"{cid}.car.{hashlib.sha256(variant.encode()).hexdigest()[:16]}"'
    headers.update(
        {
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{cid}.car"',
        }
    )
    media = f"{CAR_TYPE}; version=1; order=dfs; dups={'y' if dups else 'n'}"
    cached = _not_modified(request, etag, headers)
    if cached is not None:
        return cached
    store = ctx.store

    def plan():
        try:
            store.get_block(cid)  # a damaged root is a 500 before anything is sent
            blocks, roots = dag.select(store.get_block, cid, segments, scope, entity_bytes, dups)
        except dag.PathNotFoundError as exc:
            raise HTTPError(404, exc.message, exc.hint) from None
        except VerificationError:
            raise HTTPError(500, f"a block under {cid} failed verification and is not served") from None
        except BlockNotFoundError as exc:  # a block on the path
            raise HTTPError(404, f"cannot resolve the path: {exc.message}") from None
        except GreenbenchError as exc:
            raise HTTPError(500, f"cannot serve {cid}: {exc.message}") from None
        sizes = [store.block_size(c) for c in blocks]
        return blocks, roots, sizes

    if cid.hash_code == IDENTITY and not segments:
        blocks, roots, sizes = [], [cid], []
    else:
        blocks, roots, sizes = await asyncio.to_thread(plan)
    headers["X-Ipfs-Roots"] = ",".join(str(r) for r in roots)
    header_part = next(car_parts([cid], []))
    if all(s is not None for s in sizes):
        total = len(header_part)
        for c, s in zip(blocks, sizes):
            n = len(c.to_bytes()) + s
            total += len(_varint(n)) + n
        headers["Content-Length"] = str(total)
    if request.method == "HEAD":
        head = Response(status_code=200, headers=headers, media_type=media)
        if "Content-Length" not in headers:
            del head.headers["content-length"]  # a block is missing: GET streams without a length, HEAD says none
        return head

    log = ctx.config.log

    def stream():
        yield header_part
        for c in blocks:
            try:
                data = store.get_block(c)
            except GreenbenchError as exc:
                if log is not None:
                    log(f"CAR of {cid} stopped short: {ctx.public(exc.message)}")
                # The status is sent: end the connection without completing the body, so the client sees
                # a short CAR (fewer bytes than Content-Length), as the spec's streaming rules say.
                raise StreamAborted(str(c)) from None
            cid_bytes = c.to_bytes()
            yield _varint(len(cid_bytes) + len(data)) + cid_bytes
            yield data

    return StreamingResponse(_threaded(stream()), status_code=200, headers=headers, media_type=media)


def _varint(n: int) -> bytes:
    from greenbench.store.multiformats import encode_varint

    return encode_varint(n)


async def _threaded(gen):
    """Iterate a blocking generator off the event loop, a few parts per hop (an error raised by the
    generator comes after the parts it produced before it)."""
    it = iter(gen)
    while True:
        batch, error, done = await asyncio.to_thread(_take, it)
        for part in batch:
            yield part
        if error is not None:
            raise error
        if done:
            return


def _take(it, n: int = 16) -> tuple[list, BaseException | None, bool]:
    out: list = []
    try:
        for _ in range(n):
            out.append(next(it))
    except StopIteration:
        return out, None, True
    except Exception as exc:  # noqa: BLE001 - handed to the event loop, which re-raises it in order
        return out, exc, True
    return out, None, False
