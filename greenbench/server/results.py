"""The results API: ``POST /api/v1/results`` takes a signed result, ``GET /api/v1/results`` lists the index.

Terms:
    result: a DSSE envelope over an in-toto Statement whose predicate is a greenbench result document.
        A posted envelope is parsed strictly, its signature and subject digest verified (and, with a
        trust list, its signer checked) before anything is stored; it is then kept as its canonical
        dag-json block (:func:`greenbench.publish.envelope_block`, the CID everyone computes) and indexed.
    listing: ``GET /api/v1/results`` with the store's filters (``profile``, ``backend``, ``signer``,
        ``limit``, ``offset``, ...); a bad filter or an out-of-range ``limit``/``offset`` is a 400.
"""

from __future__ import annotations

import asyncio

from greenbench.errors import GreenbenchError, VerificationError
from greenbench.server.common import HTTPError, error_response, media_type, read_body

__all__ = ["routes", "JSON_TYPES"]

JSON_TYPES = ("application/json", "application/vnd.dsse.envelope.v1+json", "application/vnd.dsse+json")


def routes():
    from starlette.routing import Route

    return [
        Route("/api/v1/results", post_result, methods=["POST"]),
        Route("/api/v1/results", list_results, methods=["GET"]),
    ]


def _verify(raw: bytes, trust):
    from greenbench import signing

    try:
        env = signing._loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"body is not JSON: {exc}") from None
    try:
        return env, signing.verify_envelope(env, trust)
    except VerificationError as exc:
        raise HTTPError(422, f"envelope does not verify: {exc.message}") from None
    except GreenbenchError as exc:
        raise HTTPError(400, exc.message, exc.hint) from None


def _store(store, env, verified) -> tuple[object, bool]:
    from greenbench.publish import store_envelope

    cid, new = store_envelope(env, verified, store)
    return cid, new


async def post_result(request):
    from starlette.responses import JSONResponse

    ctx = request.app.state.ctx
    try:
        ctx.check_token(request)
        media = media_type(request)
        if media not in JSON_TYPES:
            raise HTTPError(415, f"expected a DSSE envelope as application/json, got {media or 'no content type'}")
        raw = await read_body(request, ctx.config.max_result_bytes)
        # Off the event loop: a large envelope must not stall every other request while it is checked.
        env, verified = await asyncio.to_thread(_verify, raw, ctx.accepted_signers())
        async with ctx.write_lock:
            cid, new = await asyncio.to_thread(_store, ctx.store, env, verified)
        return JSONResponse(
            {"cid": str(cid), "signer": verified.signer, "sha256": verified.sha256},
            status_code=201 if new else 200,
            headers={"Location": f"/ipfs/{cid}"},
        )
    except HTTPError as exc:
        return error_response(ctx, exc)


async def list_results(request):
    from starlette.responses import JSONResponse

    ctx = request.app.state.ctx
    try:
        rows = await asyncio.to_thread(lambda: ctx.store.query_results(**dict(request.query_params)))
    except GreenbenchError as exc:
        return error_response(ctx, HTTPError(400, exc.message, exc.hint))
    return JSONResponse({"results": rows})
