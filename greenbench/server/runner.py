"""Running the app on uvicorn, with the connection-level guards ASGI middleware cannot see.

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


def guarded_protocol(header_timeout_s: float, max_connections_per_client: int, log=None):
    """uvicorn's h11 protocol with the header timeout and the per-client connection limit."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_client: dict[str, int] = {}

    class GuardedH11(H11Protocol):
        _timer = None
        _counted: str | None = None

        def connection_made(self, transport):  # type: ignore[override]
            super().connection_made(transport)
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

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # the next request on this connection gets the same time for its headers
            super().on_response_complete()

    return GuardedH11


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
