"""The app factory and the middleware every request goes through.

Terms:
    Host check: a request whose ``Host`` is neither the address the client connected to (for a loopback
        server also ``localhost``/``127.0.0.1``/``[::1]``), nor the host of ``--public-url``, nor an
        ``--allow-host`` name, is refused (403): a web page that re-points its own domain name at
        127.0.0.1 (DNS rebinding) sends its own name as ``Host``.
    Origin check: a write (any method but GET, HEAD, OPTIONS) that a browser sends from a page (it
        carries ``Origin``) is refused (403) unless that origin was allowed with ``--cors-origin`` or is
        the server's own. Browsers send ``Origin`` on every cross-site POST, including the "simple"
        ones CORS lets through without asking first. Allowed origins also get CORS answers (preflight
        included); the gateway's reads are public and say ``Access-Control-Allow-Origin: *``.
    limits: at most ``max_requests_per_client`` requests in flight per client address (429 beyond, with
        ``Retry-After``); a request body must keep arriving (408 after ``body_timeout_s`` without a byte);
        request headers must arrive within ``header_timeout_s`` of the connection or of the previous
        answer, and a client may hold ``max_connections_per_client`` connections (:mod:`.runner`).
    access log: one line per request on stderr (``--quiet`` drops them): client, request line, status,
        bytes sent, milliseconds. An upload the client gave up on is one line too, never a traceback.

Routes live in one module per API: :mod:`.gateway` (trustless gateway), :mod:`.results` (results API),
:mod:`.kubo` (Kubo RPC subset), :mod:`.pages` (the web leaderboard at ``/``, result pages, the leaderboard API).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from greenbench.errors import GreenbenchError
from greenbench.server.common import MiB, Context, StreamAborted

__all__ = ["ServerConfig", "create_app", "read_token", "TOKEN_ENV", "DEFAULT_PORT", "stderr_log"]

DEFAULT_PORT = 8787
TOKEN_ENV = "GREENBENCH_SERVER_TOKEN"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_SAFE = {"GET", "HEAD", "OPTIONS"}


def stderr_log(line: str) -> None:
    """Write one log line to stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass
class ServerConfig:
    """What a server instance serves and accepts.

    Attributes:
        store_dir: the local store directory (``--store``; None: ``GREENBENCH_STORE`` or the user data dir).
        token: bearer token that guards writes; None leaves writes open (only sensible on 127.0.0.1).
        trust: did:keys allowed to publish results; None accepts any valid signature.
        board_trust: whose results the leaderboard ranks (a :class:`greenbench.trust.Trust`); None: ``trust``
            when given, else :func:`greenbench.trust.resolve` (the config file, the trust file of ``keys
            trust``, else the local signing key).
        trust_from: reads the trust policy again (``greenbench serve`` passes :func:`greenbench.trust.resolve`
            of its ``--trust``): the leaderboard's trust, and with ``trust`` set the signers accepted, then
            follow edits of the trust file (``keys trust add|rm``) within a second, without a restart.
        max_result_bytes: cap on a ``POST /api/v1/results`` body.
        max_car_bytes: cap on a ``dag/import`` body (and on the blocks it adds).
        max_block_bytes: cap on a ``block/put`` body (the store itself takes blocks up to 1 MiB).
        cors_origins: browser origins (``https://example.org``) allowed to write and to read with CORS.
        public_urls: URLs the server is reached at (a reverse proxy's); their hosts pass the Host check.
        allow_hosts: more host names that pass the Host check.
        header_timeout_s, body_timeout_s: see the module docstring.
        max_requests_per_client, max_connections_per_client: see the module docstring.
        log: where access-log lines go (None: nowhere).
        worker_process: render heavy pages (the leaderboard) in a worker process rather than a thread, so
            their work never holds this process's interpreter lock (``greenbench serve`` does).
        store: an open store to serve (tests); else one is opened from ``store_dir``.
    """

    store_dir: str | os.PathLike | None = None
    token: str | None = None
    trust: set[str] | None = None
    board_trust: Any = None
    trust_from: Callable[[], Any] | None = None
    max_result_bytes: int = 16 * MiB
    max_car_bytes: int = 256 * MiB
    max_block_bytes: int = MiB + 64 * 1024  # one 1 MiB block plus multipart framing
    cors_origins: tuple[str, ...] = ()
    public_urls: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_requests_per_client: int = 64
    max_connections_per_client: int = 128
    log: Callable[[str], None] | None = None
    worker_process: bool = False
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


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GreenbenchError(f"{url!r} is not an http(s) URL", "give it as https://host[:port]")
    return f"{parts.scheme}://{parts.netloc}".lower()


def create_app(config: ServerConfig):
    """The Starlette application for ``config`` (the store is opened once, here).

    Raises:
        GreenbenchError: a malformed ``cors_origins`` or ``public_urls`` entry.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from greenbench.server import gateway, kubo, pages, results
    from greenbench.store.local import open_store

    for url in (*config.cors_origins, *config.public_urls):
        _origin_of(url)
    store = config.store if config.store is not None else open_store(config.store_dir)
    ctx = Context(config, store, config.token.encode("utf-8") if config.token else None)
    app = Starlette(
        routes=[*pages.routes(), *gateway.routes(), *results.routes(), *kubo.routes()],
        middleware=[Middleware(Guard, ctx=ctx)],
    )
    app.state.ctx = ctx
    app.state.store = store
    app.state.config = config
    return app


class _BodyTimeout(Exception):
    pass


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


class Guard:
    """Pure ASGI middleware: Host and Origin checks, CORS, per-client limits, body timeout, access log."""

    def __init__(self, app, ctx: Context):
        self.app = app
        self.ctx = ctx
        config = ctx.config
        self.cors = {_origin_of(o) for o in config.cors_origins}
        self.names = {h.lower().rstrip(".") for h in config.allow_hosts}
        self.public = set()
        for url in config.public_urls:
            parts = urlsplit(url)
            self.names.add(parts.hostname.lower())
            self.public.add(_origin_of(url))
        self.inflight: dict[str, int] = {}

    # --- checks ------------------------------------------------------------------------------

    def _host_ok(self, scope, host: str | None) -> bool:
        if host is None:
            return True  # HTTP/1.0 without Host: no browser sends that
        host = host.strip().lower().rstrip(".")
        name, port = host, None
        if host.startswith("["):
            end = host.find("]")
            name, rest = host[1:end], host[end + 1 :]
            port = rest[1:] if rest.startswith(":") else None
        elif host.count(":") == 1:
            name, port = host.split(":")
        if name in self.names:
            return True
        server = scope.get("server")
        if not server:
            return False
        bound, bound_port = server[0], server[1]
        names = {bound.lower()}
        if bound in _LOOPBACK:
            names |= _LOOPBACK
        default = {"http": 80, "https": 443}.get(scope.get("scheme", "http"))
        if port is None:
            return name in names and bound_port == default
        return name in names and port == str(bound_port)

    def _origin_ok(self, scope, origin: str | None, host: str | None) -> bool:
        if origin is None:
            # no Origin: not a browser page (or an old browser's same-origin request)
            return _header(scope, b"sec-fetch-site") not in ("cross-site", "same-site")
        origin = origin.strip().lower()
        if origin in self.cors or origin in self.public:
            return True
        own = f"{scope.get('scheme', 'http')}://{(host or '').strip().lower()}"
        return origin == own

    # --- the middleware ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        config = self.ctx.config
        started = time.perf_counter()
        method = scope["method"]
        client = (scope.get("client") or ("-", 0))[0]
        host, origin = _header(scope, b"host"), _header(scope, b"origin")
        state = {"status": 0, "bytes": 0, "note": ""}
        cors = {}
        if origin is not None and origin.strip().lower() in self.cors:
            cors = {"access-control-allow-origin": origin.strip(), "vary": "Origin"}
        elif method in ("GET", "HEAD") and scope["path"].startswith("/ipfs/"):
            cors = {"access-control-allow-origin": "*"}
        if cors:
            cors["access-control-expose-headers"] = "Content-Range, Content-Length, Content-Location, ETag, X-Ipfs-Path, X-Ipfs-Roots"

        body = {"done": method in ("GET", "HEAD")}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                extra = [(k.encode(), v.encode()) for k, v in cors.items()]
                if not body["done"]:
                    # answered before the request body was read (408, 413, a refusal): the connection cannot
                    # carry another request, so say so and let the server close it now
                    extra.append((b"connection", b"close"))
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        counted = False
        try:
            refusal = self._refusal(scope, method, host, origin)
            if refusal is not None:
                return await self._plain(send_logged, *refusal)
            if method == "OPTIONS":
                return await self._preflight(send_logged, scope, origin)
            n = self.inflight.get(client, 0)
            if n >= config.max_requests_per_client:
                return await self._plain(
                    send_logged, 429, f"more than {config.max_requests_per_client} requests in flight from {client}", {"Retry-After": "1"}
                )
            self.inflight[client] = n + 1
            counted = True
            await self.app(scope, self._timed_receive(receive, config.body_timeout_s, body), send_logged)
        except _BodyTimeout:
            state["note"] = f" (no request body for {config.body_timeout_s:g} s)"
            if not state["status"]:
                await self._plain(send_logged, 408, f"the request body stopped arriving for {config.body_timeout_s:g} s")
        except StreamAborted as exc:
            state["note"] = f" (stopped short at block {exc})"
        except Exception as exc:
            from starlette.requests import ClientDisconnect

            if not isinstance(exc, ClientDisconnect):
                raise
            state["note"] = " (client went away during the upload)"
        finally:
            if counted:
                left = self.inflight[client] - 1
                if left:
                    self.inflight[client] = left
                else:
                    del self.inflight[client]
            if config.log is not None:
                path = scope.get("raw_path") or scope["path"].encode()
                if scope.get("query_string"):
                    path += b"?" + scope["query_string"]
                config.log(
                    f'{client} "{method} {path.decode("latin-1")} HTTP/{scope.get("http_version", "1.1")}" '
                    f"{state['status'] or '-'} {state['bytes']} {(time.perf_counter() - started) * 1e3:.1f}ms{state['note']}"
                )

    def _refusal(self, scope, method: str, host: str | None, origin: str | None):
        if not self._host_ok(scope, host):
            return (
                403,
                f"Host {host[:100]!r} is not an address of this server",
                {},
                "reach it at the address it listens on, or start it with --public-url URL / --allow-host NAME",
            )
        if method not in _SAFE and not self._origin_ok(scope, origin, host):
            return (
                403,
                f"writes from web pages at {origin[:100] if origin else 'another site'} are not allowed",
                {},
                "start the server with --cors-origin ORIGIN to let that page write",
            )
        return None

    async def _plain(self, send, status: int, message: str, headers: dict | None = None, hint: str | None = None):
        import json

        body = {"error": self.ctx.public(message)}
        if hint:
            body["hint"] = hint
        data = json.dumps(body).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})

    async def _preflight(self, send, scope, origin: str | None):
        if origin is None or origin.strip().lower() not in self.cors:
            return await self._plain(send, 403, "cross-origin requests from this origin are not allowed")
        headers = [
            (b"access-control-allow-methods", b"GET, HEAD, POST"),
            (b"access-control-allow-headers", b"Authorization, Content-Type, Accept, Range, Cache-Control"),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _timed_receive(receive, timeout_s: float, body: dict):
        async def timed():
            if body["done"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout_s)
            except asyncio.TimeoutError:
                raise _BodyTimeout() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body["done"] = True  # the body is complete: waiting for a disconnect is not a body read
            return message

        return timed
