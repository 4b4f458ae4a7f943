"""The web pages: the service description at ``/`` and the leaderboard (``/leaderboard``, HTML, and
``/api/v1/leaderboard``, JSON), where they were before the server had a package of its own.

Terms:
    leaderboard: the rows :func:`greenbench.leaderboard.build_rows` ranks from the store's indexed
        results whose block and signature still verify (:func:`greenbench.publish.load_verified_results`),
        rendered as JSON (``{"rows", "skipped"}``) or as the HTML page of :func:`greenbench.leaderboard.render_html`.
    shared rendering: verifying every result (one block read and one Ed25519 check each) and rendering
        thousands of rows is far more work than serving a block, so a rendered answer is kept per
        (state of the result index, page, ``method``, ``profile``): requests that arrive while it is being
        made wait for that one computation, later ones get the bytes, and any change to the result
        index (a new result, a rebuilt index) starts afresh. Answers older than :data:`MAX_AGE_S` are
        made again, so a block damaged since drops out. The work runs in a worker process when the
        server was given one (``greenbench serve`` is), so it never holds the event loop's interpreter
        lock while blocks are being served; else in a thread.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time

from greenbench.server.common import HTTPError, error_response

__all__ = ["routes", "render", "MAX_AGE_S"]

#: A rendered leaderboard is reused for at most this long (and never past a change of the result index).
MAX_AGE_S = 60.0
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}

# In a worker: the verified entries of the last state seen, shared by every page rendered from it.
_ENTRIES: dict = {}
_ENTRIES_LOCK = threading.Lock()


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


def render(store_root: str, trust, state, page: str, method: str | None, profile: str | None) -> tuple[bytes, bytes]:
    """The leaderboard ``page`` (``json`` or ``html``) of the store at ``store_root``: its bytes, and the
    same gzip-compressed (made once here, for every client that accepts gzip: a leaderboard of 10,000
    results is 5.7 MB of JSON, a seventh of that compressed).

    Runs in a worker process or thread; the verified entries of ``state`` are kept for the next page.

    Raises:
        ImportError: this greenbench has no leaderboard module (the server answers 501).
    """
    from greenbench.leaderboard import build_rows, render_html
    from greenbench.publish import load_verified_results
    from greenbench.store.local import LocalStore

    key = (store_root, state, None if trust is None else tuple(sorted(trust)))
    with _ENTRIES_LOCK:
        if _ENTRIES.get("key") != key:
            _ENTRIES.clear()
            _ENTRIES["value"] = load_verified_results(LocalStore(store_root), trust)
            _ENTRIES["key"] = key
        entries, skipped = _ENTRIES["value"]
    skipped = list(skipped)
    rows = build_rows(entries, method=method, profile=profile, skipped=skipped)
    if page == "html":
        body = render_html(rows).encode("utf-8")
    else:  # byte for byte what Starlette's JSONResponse would send
        doc = {"rows": rows, "skipped": skipped}
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return body, gzip.compress(body, compresslevel=6, mtime=0)


async def _rendered(request, page: str) -> tuple[bytes, bytes]:
    """The rendered page, shared as the module docstring says."""
    ctx = request.app.state.ctx
    q = request.query_params
    method, profile = q.get("method") or None, q.get("profile") or None
    state = ctx.store.result_state()  # one indexed count: cheaper inline than a thread hop
    key = ("leaderboard", page, method, profile)
    now = time.monotonic()
    hit = ctx.cache.get(key)
    if hit is not None and hit["state"] == state and now - hit["at"] < MAX_AGE_S:
        return await asyncio.shield(hit["task"])
    args = (str(ctx.store.root), ctx.config.trust, state, page, method, profile)
    task = asyncio.ensure_future(_run(ctx, args))
    ctx.cache[key] = {"state": state, "at": now, "task": task}
    try:
        return await asyncio.shield(task)
    except BaseException:
        if ctx.cache.get(key, {}).get("task") is task:
            del ctx.cache[key]  # a failed computation is not shared with later requests
        raise


async def _run(ctx, args) -> tuple[bytes, bytes]:
    from concurrent.futures.process import BrokenProcessPool

    pool = ctx.worker_pool()
    if pool is not None:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, render, *args)
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one next time, a thread now
            ctx.drop_worker_pool()
    return await asyncio.to_thread(render, *args)


async def _page(request, page: str):
    from starlette.responses import Response

    ctx = request.app.state.ctx
    try:
        body, compressed = await _rendered(request, page)
    except ImportError:
        return error_response(ctx, HTTPError(501, "this greenbench has no leaderboard module"))
    except HTTPError as exc:
        return error_response(ctx, exc)
    headers = {"Vary": "Accept-Encoding", **(_HTML_HEADERS if page == "html" else {})}
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        body, headers["Content-Encoding"] = compressed, "gzip"
    media = "text/html; charset=utf-8" if page == "html" else "application/json"
    return Response(body, media_type=media, headers=headers)


def _accepts_gzip(header: str) -> bool:
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


async def leaderboard_json(request):
    return await _page(request, "json")


async def leaderboard_html(request):
    return await _page(request, "html")
