"""Running the app on uvicorn, with the connection-level guards ASGI middleware cannot see.

uvicorn's httptools protocol (a C parser) is used where httptools is installed, as uvicorn itself does;
its pure-Python h11 protocol otherwise.

Terms:
    header timeout: a connection must deliver a request's headers within ``header_timeout_s`` of being
        opened (or of the previous answer, on a kept-alive connection); otherwise it gets a 408 and is
        closed. Without it 30 connections that send a byte now and then stay open forever (slowloris).
    connection limit: a client address may hold at most ``max_connections_per_client`` connections;
        the next one is closed at once.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from greenbench.errors import GreenbenchError

__all__ = ["BackgroundServer", "uvicorn_config", "bind", "guarded_protocol"]

_TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Corked:
    """A transport that gathers the writes of one event-loop step into one ``send``: an answer's headers
    and body (written one after the other) leave in one system call, not two; on this project's VMs a
    loopback send costs ~150 us, a tenth of a small block's whole answer (tests/benchmarks/bench_server.py).
    Large writes go out at once."""

    _FLUSH_AT = 64 * 1024

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self._FLUSH_AT:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._parts:
            data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts, self._size = [], 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._parts, self._size = [], 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def guarded_protocol(header_timeout_s: float, max_connections_per_client: int, log=None):
    """uvicorn's HTTP protocol (httptools' parser where installed, else h11) with the header timeout, the
    per-client connection limit and corked writes."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools not installed: the pure-Python parser
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    open_by_client: dict[str, int] = {}

    class Guarded(Base):
        _timer = None
        _counted: str | None = None

        def connection_made(self, transport):  # type: ignore[override]
            super().connection_made(_Corked(transport, self.loop))
            client = self.client[0] if self.client else "-"
            if open_by_client.get(client, 0) >= max_connections_per_client:
                if log is not None:
                    log(f"{client} refused: more than {max_connections_per_client} connections open")
                transport.close()
                return
            open_by_client[client] = open_by_client.get(client, 0) + 1
            self._counted = client
            self._arm()

        def connection_lost(self, exc):
            self._disarm()
            if self._counted is not None:
                left = open_by_client[self._counted] - 1
                if left:
                    open_by_client[self._counted] = left
                else:
                    del open_by_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _headers_too_slow(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's headers
                if log is not None and self.client:
                    log(f"{self.client[0]} closed: no complete request headers within {header_timeout_s:g} s")
                self.transport.write(_TIMEOUT_REPLY)
                self.transport.close()

        # h11: the headers are in when handle_events made a new cycle
        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:
                self._disarm()

        # httptools: the parser says so
        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._arm()  # the next request on this connection gets the same time for its headers
            super().on_response_complete()

    for hook in ("handle_events", "on_headers_complete"):
        if not hasattr(Base, hook):  # each parser has one of the two
            delattr(Guarded, hook)
    return Guarded


def uvicorn_config(app, config, **kw):
    """A ``uvicorn.Config`` for ``app`` with the guards of ``config`` (a :class:`ServerConfig`)."""
    import uvicorn

    protocol = guarded_protocol(config.header_timeout_s, config.max_connections_per_client, config.log)
    return uvicorn.Config(
        app,
        http=protocol,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        **kw,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to ``host:port``.

    Raises:
        GreenbenchError: the address cannot be bound (in use, not an interface of this machine).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise GreenbenchError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "pick another --port (or stop whatever uses it), and check --host names an interface of this machine",
        ) from None
    return sock


class BackgroundServer:
    """Run an app on uvicorn in a daemon thread (tests, embedding); ``with`` starts and stops it.

    Args:
        app: the ASGI application (from :func:`greenbench.server.app.create_app`).
        host: interface to bind (127.0.0.1 by default).
        port: TCP port; 0 picks a free one (see :attr:`url` after start).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        config = getattr(getattr(app, "state", None), "config", None)
        if config is not None:
            self._config = uvicorn_config(app, config, host=host, port=port)
        else:
            self._config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(self._config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> "BackgroundServer":
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

    def __exit__(self, *exc: Any) -> None:
        self.stop()
