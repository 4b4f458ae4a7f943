"""What every API module of the server shares: errors, body reading, multipart uploads, the context.

Terms:
    context: one :class:`Context` per app: the config, the store (opened once), the write token and
        the lock that serialises writes; a route reads it as ``request.app.state.ctx``.
    error body: JSON ``{"error": message, "hint": ...}`` for greenbench's own APIs and the gateway,
        ``{"Message": message, "Code": 0|1, "Type": "error"}`` for the Kubo RPC (Code 1, with HTTP
        400, for a bad request; 0, with HTTP 500, for a failure, as Kubo answers). Messages never carry
        the server's own paths (store directory, temporary directory, home): :meth:`Context.public`
        replaces them.
    multipart upload: the Kubo RPC sends files as ``multipart/form-data``; parts are streamed to a
        sink each as they arrive, so a large CAR never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from greenbench.errors import GreenbenchError

__all__ = [
    "MiB",
    "IMMUTABLE",
    "RAW_TYPE",
    "CAR_TYPE",
    "HTTPError",
    "StreamAborted",
    "MultipartError",
    "Context",
    "parse_multipart",
    "parse_multipart_file",
    "read_body",
    "read_parts",
    "media_type",
    "parse_cid",
    "error_response",
]

MiB = 1024 * 1024
IMMUTABLE = "public, max-age=29030400, immutable"
RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"


class HTTPError(Exception):
    """An error answer: HTTP status, message, optional hint and headers; ``kubo_code`` for Kubo RPC bodies."""

    def __init__(self, status: int, message: str, hint: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers or {}


class StreamAborted(Exception):
    """A streamed answer had to stop after its status was sent (the app middleware ends the connection)."""


class MultipartError(ValueError):
    """A multipart/form-data body that cannot be parsed."""


class _TooLarge(Exception):
    pass


@dataclass
class Context:
    """Per-app state shared by the routes (module docstring)."""

    config: Any
    store: Any
    token: bytes | None
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cache: dict = field(default_factory=dict)
    _secrets: list[tuple[str, str]] = field(default_factory=list)
    _pool: Any = None

    def __post_init__(self) -> None:
        root = getattr(self.store, "root", None)
        places = []
        if root is not None:
            places += [(str(Path(root).resolve()), "<store>"), (str(root), "<store>")]
        places += [(tempfile.gettempdir(), "<tmp>"), (os.path.expanduser("~"), "<home>"), (os.getcwd(), "<cwd>")]
        # longest first, so /home/u/store becomes <store>, not <home>/store
        self._secrets = sorted({p for p in places if len(p[0]) > 1}, key=lambda p: -len(p[0]))

    def public(self, text: str) -> str:
        """``text`` without this machine's paths (error bodies go to anyone who asks)."""
        for secret, name in self._secrets:
            text = text.replace(secret, name)
        return text

    def current_trust(self):
        """The trust policy read again through ``config.trust_from`` at most once a second (None without
        one); a policy that cannot be read now (a trust file being edited) leaves the last one in force."""
        read = getattr(self.config, "trust_from", None)
        if read is None:
            return None
        now = time.monotonic()
        last = self.cache.get("trust_read")
        if last is None or now - last[0] >= 1.0:
            try:
                policy = read()
            except Exception:  # noqa: BLE001 - e.g. a half-written file: the previous policy holds
                policy = last[1] if last is not None else getattr(self.config, "board_trust", None)
            last = (now, policy)
            self.cache["trust_read"] = last
        return last[1]

    def accepted_signers(self) -> set[str] | None:
        """Whose results may be posted: None (any valid signature) unless the server was given ``trust``,
        then those keys, as the trust file lists them now when it is read again (``trust_from``)."""
        if self.config.trust is None:
            return None
        policy = self.current_trust()
        return set(policy.keys) if policy is not None else self.config.trust

    def worker_pool(self):
        """The worker process for heavy pages (``config.worker_process``), started on first use; else None."""
        if not getattr(self.config, "worker_process", False):
            return None
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def drop_worker_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def check_token(self, request) -> None:
        """Refuse a write without the configured bearer token (401)."""
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), self.token):
            raise HTTPError(
                401,
                "this server needs a bearer token for writes",
                "send Authorization: Bearer <token> (greenbench publish reads GREENBENCH_SERVER_TOKEN or --token-file)",
                {"WWW-Authenticate": 'Bearer realm="greenbench"'},
            )


def error_response(ctx: Context, exc: HTTPError, kubo: bool = False):
    """The JSON error answer for ``exc`` (module docstring), with this machine's paths removed."""
    from starlette.responses import JSONResponse

    message = ctx.public(exc.message)
    if kubo:
        body = {"Message": message, "Code": 1 if exc.status < 500 else 0, "Type": "error"}
    else:
        body = {"error": message}
        if exc.hint:
            body["hint"] = ctx.public(exc.hint)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def from_store_error(exc: GreenbenchError, status: int = 400) -> HTTPError:
    return HTTPError(status, exc.message, exc.hint)


def media_type(request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_cid(text: str):
    from greenbench.store.cid import CID

    try:
        return CID.decode(text)
    except GreenbenchError as exc:
        raise HTTPError(400, exc.message, exc.hint) from None


def _declared_length(request, limit: int) -> None:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise HTTPError(400, f"bad Content-Length {cl[:40]!r}") from None
        if n > limit:
            raise HTTPError(413, f"body of {n} bytes exceeds the {limit}-byte limit")


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge()
        if chunk:
            yield chunk


async def read_body(request, limit: int) -> bytes:
    """The whole body, refused (413) past ``limit`` bytes, declared or streamed."""
    _declared_length(request, limit)
    buf = bytearray()
    try:
        async for chunk in _limited(request.stream(), limit):
            buf += chunk
    except _TooLarge:
        raise HTTPError(413, f"body exceeds the {limit}-byte limit") from None
    return bytes(buf)


def _boundary_of(content_type: str) -> bytes:
    m = re.search(r'boundary=(?:"([^"]+)"|([^;,\s]+))', content_type, re.IGNORECASE)
    if not m:
        raise MultipartError("multipart/form-data without a boundary parameter")
    boundary = (m.group(1) or m.group(2)).encode("latin-1")
    if not 1 <= len(boundary) <= 70:
        raise MultipartError("multipart boundary must be 1 to 70 characters")
    return boundary


async def parse_multipart(
    chunks: AsyncIterator[bytes],
    content_type: str,
    open_part: Callable[[dict[str, str]], Callable[[bytes], Any]],
    max_parts: int = 1,
) -> int:
    """Stream every part of a multipart/form-data body: ``open_part(headers)`` returns the part's sink,
    which gets the part's bytes as they arrive. Returns the number of parts.

    Raises:
        MultipartError: no boundary, no part, more than ``max_parts`` parts, or a truncated body.
    """
    boundary = _boundary_of(content_type)
    first = b"--" + boundary
    delim = b"\r\n--" + boundary
    buf = b""
    state = "preamble"
    headers: dict[str, str] = {}
    sink: Callable[[bytes], Any] | None = None
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
                if parts > max_parts:
                    raise MultipartError(
                        "expected exactly one file part, got more" if max_parts == 1 else f"more than {max_parts} parts"
                    )
                headers = {}
                state = "headers"
            elif state == "headers":
                if len(buf) < 2:
                    break
                if buf[:2] == b"\r\n":  # a part without headers
                    buf = buf[2:]
                    sink, state = open_part(headers), "body"
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
                sink, state = open_part(headers), "body"
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
    return parts


async def parse_multipart_file(
    chunks: AsyncIterator[bytes], content_type: str, sink: Callable[[bytes], Any]
) -> dict[str, str]:
    """Stream the single file part of a multipart/form-data body into ``sink``; returns its headers."""
    seen: dict[str, str] = {}

    def open_part(headers: dict[str, str]):
        seen.update(headers)
        return sink

    await parse_multipart(chunks, content_type, open_part, max_parts=1)
    return seen


async def read_parts(
    request, limit: int, open_part: Callable[[dict[str, str]], Callable[[bytes], Any]], max_parts: int = 1
) -> int:
    """Stream the parts of a multipart upload (at most ``limit`` bytes in all) to their sinks.

    Raises:
        HTTPError: 415 not multipart, 413 too large, 400 malformed.
    """
    if media_type(request) != "multipart/form-data":
        raise HTTPError(
            415,
            f"expected multipart/form-data, got {request.headers.get('content-type') or 'no content type'}",
            "upload the data as a multipart file field named 'file', as the Kubo RPC API does",
        )
    _declared_length(request, limit)
    try:
        return await parse_multipart(_limited(request.stream(), limit), request.headers["content-type"], open_part, max_parts)
    except _TooLarge:
        raise HTTPError(413, f"body exceeds the {limit}-byte limit") from None
    except MultipartError as exc:
        raise HTTPError(400, f"bad multipart body: {exc}") from None
