"""The web pages: the service description at ``/`` and the leaderboard (``/leaderboard``, HTML, and
``/api/v1/leaderboard``, JSON), where they were before the server had a package of its own.

Terms:
    leaderboard: the rows :func:`greenbench.leaderboard.build_rows` ranks from the store's indexed
        results whose block and signature still verify (:func:`greenbench.publish.load_verified_results`).
        Verifying every result is the expensive part (one Ed25519 check and one block read each), so the
        verified entries are computed once per state of the result index and shared: concurrent
        requests wait for the one computation in flight instead of each starting their own, and a new
        result (or a replaced index) starts a fresh one. Entries older than :data:`MAX_AGE_S` are
        verified again, so a block damaged since drops out.
"""

from __future__ import annotations

import asyncio
import time

from greenbench.server.common import HTTPError, error_response

__all__ = ["routes", "MAX_AGE_S"]

#: Verified entries are reused for at most this long (and never past a change of the result index).
MAX_AGE_S = 60.0


def routes():
    from starlette.routing import Route

    return [
        Route("/", index, methods=["GET"]),
        Route("/api/v1/leaderboard", leaderboard_json, methods=["GET"]),
        Route("/leaderboard", leaderboard_html, methods=["GET"]),
    ]


async def index(request):
    from starlette.responses import JSONResponse

    ctx = request.app.state.ctx
    return JSONResponse(
        {
            "service": "greenbench",
            "gateway": "/ipfs/{cid}?format=raw|car",
            "results": "/api/v1/results",
            "leaderboard": "/leaderboard",
            "kubo_rpc": "/api/v0/",
            "writes_need_token": ctx.token is not None,
        }
    )


async def _verified_entries(ctx) -> tuple[list, list]:
    """``(entries, skipped)`` of :func:`load_verified_results`, shared as the module docstring says."""
    from greenbench.publish import load_verified_results

    store, trust = ctx.store, ctx.config.trust
    state = await asyncio.to_thread(store.result_state)
    cache = ctx.cache
    hit = cache.get("leaderboard")
    now = time.monotonic()
    if hit is not None and hit["state"] == state and now - hit["at"] < MAX_AGE_S:
        return await asyncio.shield(hit["task"])
    task = asyncio.ensure_future(asyncio.to_thread(load_verified_results, store, trust))
    cache["leaderboard"] = {"state": state, "at": now, "task": task}
    try:
        return await asyncio.shield(task)
    except BaseException:
        if cache.get("leaderboard", {}).get("task") is task:
            del cache["leaderboard"]  # a failed computation is not shared with later requests
        raise


async def _rows(request) -> tuple[list, list]:
    try:
        from greenbench.leaderboard import build_rows
    except ImportError:
        raise HTTPError(501, "this greenbench has no leaderboard module") from None
    entries, skipped = await _verified_entries(request.app.state.ctx)
    skipped = list(skipped)
    q = request.query_params
    rows = build_rows(entries, method=q.get("method") or None, profile=q.get("profile") or None, skipped=skipped)
    return rows, skipped


async def leaderboard_json(request):
    from starlette.responses import JSONResponse

    ctx = request.app.state.ctx
    try:
        rows, skipped = await _rows(request)
    except HTTPError as exc:
        return error_response(ctx, exc)
    return JSONResponse({"rows": rows, "skipped": skipped})


async def leaderboard_html(request):
    from starlette.responses import HTMLResponse

    ctx = request.app.state.ctx
    try:
        rows, _ = await _rows(request)
        from greenbench.leaderboard import render_html
    except HTTPError as exc:
        return error_response(ctx, exc)
    except ImportError:
        return error_response(ctx, HTTPError(501, "this greenbench has no HTML leaderboard"))
    return HTMLResponse(
        render_html(rows),
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )
