"""The web pages: the leaderboard at ``/``, one page per result, and the leaderboard's JSON API.

Routes:
    ``/``: the leaderboard (:mod:`greenbench.leaderboard.html`): filters, sorting and pages in the query
        string, charts of one work group, all without JavaScript. ``/leaderboard`` redirects there.
    ``/result/{cid}``: one result: phases, energy by meter and domain, J/token per repeat, carbon scenarios,
        provenance; ``/result/{cid}/profile.toml`` is its resolved profile, to run the same work again.
    ``/api/v1/leaderboard``: ``{"rows", "untrusted", "skipped"}`` (the filters and ``sort`` of ``/``;
        ``limit`` and ``offset`` page the rows, and add ``total``).
    ``/api/v1``: what this server serves (JSON; ``/`` said this before it became the leaderboard).

Terms:
    board: the ranked leaderboard of the store's result index (:func:`greenbench.leaderboard.from_store`: one
        index query, no envelope re-read, since every envelope was verified when it was stored), under the
        server's trust (``--trust``, else the config file's ``trust``, else the trust file of ``greenbench
        keys trust``, else the key of the user running the server).
    shared rendering: ranking 100,000 results takes about a second, far more than serving a block, so the
        board is made once per state of the result index and kept (in a worker process when the server has
        one, so it never holds the event loop's interpreter lock while blocks are served; else in a thread),
        with the orderings and charts pages ask for. A rendered page is kept per (state, route, query): requests that
        arrive while it is being made wait for that one computation, later ones get the bytes (gzip-ready),
        and any change to the result index starts afresh. Pages older than :data:`MAX_AGE_S` are made again.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import threading
import time
from collections import OrderedDict

from greenbench.server.common import HTTPError, error_response

__all__ = ["routes", "render", "MAX_AGE_S"]

#: A rendered page is reused for at most this long (and never past a change of the result index).
MAX_AGE_S = 60.0
#: Rendered pages kept in the server process.
MAX_PAGES = 256
_HTML_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

# In the worker: the board of the last state seen, and what was derived from it.
_BOARD: dict = {}
_BOARD_LOCK = threading.Lock()


def routes():
    from starlette.routing import Route

    return [
        Route("/", index, methods=["GET"]),
        Route("/api/v1", service, methods=["GET"]),
        Route("/api/v1/leaderboard", leaderboard_json, methods=["GET"]),
        Route("/leaderboard", leaderboard_redirect, methods=["GET"]),
        Route("/result/{cid}", result, methods=["GET"]),
        Route("/result/{cid}/profile.toml", result_profile, methods=["GET"]),
    ]


async def service(request):
    from starlette.responses import JSONResponse

    ctx = request.app.state.ctx
    return JSONResponse(
        {
            "service": "greenbench",
            "leaderboard": "/",
            "leaderboard_json": "/api/v1/leaderboard",
            "result_page": "/result/{cid}",
            "gateway": "/ipfs/{cid}?format=raw|car",
            "results": "/api/v1/results",
            "kubo_rpc": "/api/v0/",
            "writes_need_token": ctx.token is not None,
        }
    )


async def leaderboard_redirect(request):
    from starlette.responses import RedirectResponse

    query = request.url.query
    return RedirectResponse("/" + (f"?{query}" if query else ""), status_code=308)


# --------------------------------------------------------------------------- the worker side


def _board(store_root: str, trust, state):
    """The board of ``state`` and what pages derive from it (kept for the next request)."""
    from greenbench.leaderboard import from_store
    from greenbench.leaderboard.html import Facets, Orders
    from greenbench.publish import refresh_index
    from greenbench.store.local import LocalStore

    key = (store_root, state, trust)
    with _BOARD_LOCK:
        if _BOARD.get("key") != key:
            _BOARD.clear()
            gc.unfreeze()
            store = LocalStore(store_root)
            refresh_index(store)  # rows an older greenbench indexed: extracted (and verified) once
            board = from_store(store, trust)
            # every sort order and filter value, once per board: a page then never sorts or scans the board
            by_cid = {r["cid"]: r for r in board.rows + board.untrusted}
            _BOARD.update(key=key, board=board, facets=Facets.of(board), ordered=OrderedDict(), charts=OrderedDict(),
                          by_cid=by_cid, groups=frozenset(r["group"] for r in by_cid.values()), store=store,
                          orders=Orders(board))
            gc.freeze()  # the board is long-lived: keep the collector from walking it on every full collection
        return _BOARD


def _ordered(cache: dict, view):
    key = (view.sort, view.filters, view.untrusted)
    hit = cache["ordered"].get(key)
    if hit is None:
        hit = cache["orders"].rows(view)
        cache["ordered"][key] = hit
        while len(cache["ordered"]) > 64:
            cache["ordered"].popitem(last=False)
    return hit


def render(store_root: str, trust, state, page: str, params: tuple) -> tuple[int, str, bytes, bytes]:
    """One page (``index``, ``json``, ``result``, ``profile``) of the store at ``store_root``:
    ``(status, media type, body, gzip-compressed body)``. Runs in a worker process or thread.

    Raises:
        ImportError: this greenbench has no leaderboard module (the server answers 501).
    """
    from greenbench.errors import GreenbenchError
    from greenbench.leaderboard import html as pages_html

    q = dict(params)
    cache = _board(store_root, trust, state)
    board = cache["board"]
    links = pages_html.ServerLinks()
    try:
        if page == "index":
            view = pages_html.parse_view(q)
            group = view.filter_dict.get("group")
            charts = None
            # the charts head the first page of a view; a group no result has gets none (and nothing is kept
            # for it: a query string cannot grow this cache)
            if view.page == 1 and not view.untrusted and (group is None or group in cache["groups"]):
                charts = cache["charts"].get(group)
                if charts is None:
                    charts = cache["charts"][group] = pages_html.charts_for(board, group, links)
                    while len(cache["charts"]) > 64:
                        cache["charts"].popitem(last=False)
                cache["charts"].move_to_end(group)
            body = pages_html.index_page(board, view, links, trust_source=trust.source, facets=cache["facets"],
                                         charts=charts, rows=_ordered(cache, view)).encode()
            media = "text/html; charset=utf-8"
        elif page == "json":
            view = pages_html.parse_view({k: v for k, v in q.items() if k not in ("limit", "offset", "trusted_only")})
            rows = _ordered(cache, view)
            untrusted = [] if q.get("trusted_only") in ("1", "true", "yes") else _ordered(
                cache, pages_html.View(1, view.sort, view.filters, True))
            if "limit" in q or "offset" in q:
                limit, offset = _count(q.get("limit", "100"), "limit", 10_000), _count(q.get("offset", "0"), "offset", None)
                body = board.json_bytes(rows[offset:offset + limit], untrusted[offset:offset + limit], total=len(rows),
                                        untrusted_total=len(untrusted), limit=limit, offset=offset)
            else:
                body = board.json_bytes(rows, untrusted)
            media = "application/json"
        else:
            cid = q["cid"]
            row = cache["by_cid"].get(cid)
            try:
                block = cache["store"].get_block(cid)
            except GreenbenchError as exc:
                return 404, "text/plain; charset=utf-8", f"no such result: {exc.message}\n".encode(), b""
            if row is None and not _is_result(cache["store"], cid):
                return 404, "text/plain; charset=utf-8", f"{cid} is not a stored result\n".encode(), b""
            if page == "profile":
                _, doc, _ = pages_html._envelope_parts(block)
                body, media = pages_html.profile_toml(doc).encode(), "text/plain; charset=utf-8"
            else:
                body, media = pages_html.result_page(cid, block, row, links).encode(), "text/html; charset=utf-8"
    except ValueError as exc:
        return 400, "text/plain; charset=utf-8", f"{exc}\n".encode(), b""
    except GreenbenchError as exc:
        return 422, "text/plain; charset=utf-8", f"{exc.message}\n".encode(), b""
    return 200, media, body, gzip.compress(body, compresslevel=6, mtime=0)


def _is_result(store, cid: str) -> bool:
    return bool(store.query_results(cid=cid))


def _count(text: str, name: str, most: int | None) -> int:
    if not text.isdigit() or len(text) > 12 or (most is not None and int(text) > most):
        raise ValueError(f"{name} must be an integer from 0{f' to {most}' if most else ''}, got {text[:20]!r}")
    return int(text)


# --------------------------------------------------------------------------- the server side


def _trust(ctx):
    """The trust the pages rank under (module docstring): read again as the trust file changes when the app
    has ``trust_from`` (``greenbench serve``), else resolved once per app."""
    current = ctx.current_trust()
    if current is not None:
        return current
    got = ctx.cache.get("board_trust")
    if got is None:
        from greenbench import trust

        configured = getattr(ctx.config, "board_trust", None)
        if configured is not None:
            got = configured
        elif ctx.config.trust is not None:
            got = trust.Trust(frozenset(ctx.config.trust), "the server's --trust list", None, True)
        else:
            got = trust.resolve()
        ctx.cache["board_trust"] = got
    return got


async def _rendered(request, page: str, params: tuple):
    """The rendered page, shared as the module docstring says."""
    return await _rendered_for(request.app.state.ctx, page, params)


#: Boards of fewer results rank in well under a second: not worth a worker process at start-up.
WARM_FROM = 1000


async def warm(ctx) -> None:
    """Render ``/`` once in the background as the server starts, so that its first visitor does not wait for
    the board to be ranked (seconds for 100,000 results); with the worker process only (``greenbench
    serve``) and a board of :data:`WARM_FROM` results or more; a failure is left for a request to report."""
    if getattr(ctx.config, "worker_process", False) and ctx.store.result_state()[0] >= WARM_FROM:
        try:
            await _rendered_for(ctx, "index", ())
        except Exception:
            pass


async def _rendered_for(ctx, page: str, params: tuple):
    state = ctx.store.result_state()  # one indexed count: cheaper inline than a thread hop
    trust = _trust(ctx)
    lru = ctx.cache.setdefault("pages", OrderedDict())
    key = (page, params)
    now = time.monotonic()
    hit = lru.get(key)
    if hit is not None and hit["state"] == state and hit["trust"] == trust and now - hit["at"] < MAX_AGE_S:
        lru.move_to_end(key)
        return await asyncio.shield(hit["task"])
    args = (str(ctx.store.root), trust, state, page, params)
    task = asyncio.ensure_future(_run(ctx, args))
    lru[key] = {"state": state, "trust": trust, "at": now, "task": task}
    while len(lru) > MAX_PAGES:
        lru.popitem(last=False)
    try:
        return await asyncio.shield(task)
    except BaseException:
        if lru.get(key, {}).get("task") is task:
            del lru[key]  # a failed computation is not shared with later requests
        raise


async def _run(ctx, args):
    from concurrent.futures.process import BrokenProcessPool

    pool = ctx.worker_pool()
    if pool is not None:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, render, *args)
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one next time, a thread now
            ctx.drop_worker_pool()
    return await asyncio.to_thread(render, *args)


async def _page(request, page: str, params: tuple):
    from starlette.responses import Response

    ctx = request.app.state.ctx
    try:
        status, media, body, compressed = await _rendered(request, page, params)
    except ImportError:
        return error_response(ctx, HTTPError(501, "this greenbench has no leaderboard module"))
    except HTTPError as exc:
        return error_response(ctx, exc)
    headers = {"Vary": "Accept-Encoding"}
    if media.startswith("text/html"):
        from greenbench.leaderboard.html import CSP

        headers.update(_HTML_HEADERS, **{"Content-Security-Policy": CSP})
    if status != 200:
        if media == "application/json" or page == "json":
            return error_response(ctx, HTTPError(status, body.decode().strip()))
        return Response(ctx.public(body.decode()), status_code=status, media_type=media, headers=headers)
    if compressed and _accepts_gzip(request.headers.get("accept-encoding", "")):
        body, headers["Content-Encoding"] = compressed, "gzip"
    return Response(body, media_type=media, headers=headers)


def _params(request, allowed: tuple[str, ...]) -> tuple:
    """The query parameters a page reads, in a stable order (the cache key); others are ignored."""
    q = request.query_params
    return tuple(sorted((k, q[k][:300]) for k in allowed if q.get(k)))


def _accepts_gzip(header: str) -> bool:
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


_VIEW_PARAMS = ("page", "sort", "view", "group", "profile", "backend", "method", "hardware", "region", "signer", "kind")


async def index(request):
    return await _page(request, "index", _params(request, _VIEW_PARAMS))


async def leaderboard_json(request):
    return await _page(request, "json", _params(request, _VIEW_PARAMS + ("limit", "offset", "trusted_only")))


def _cid_param(request) -> tuple:
    from greenbench.server.common import parse_cid

    return (("cid", str(parse_cid(request.path_params["cid"]))),)


async def _cid_page(request, kind: str):
    try:
        params = _cid_param(request)
    except HTTPError as exc:
        return error_response(request.app.state.ctx, exc)
    return await _page(request, kind, params)


async def result(request):
    return await _cid_page(request, "result")


async def result_profile(request):
    return await _cid_page(request, "profile")
