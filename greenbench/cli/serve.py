"""`greenbench serve`: the HTTP store (trustless gateway subset + write API) on uvicorn.

Binds 127.0.0.1:8787 by default. Writes (``POST /api/v1/results``, ``/api/v0/block/put``,
``/api/v0/dag/import``) need ``Authorization: Bearer <token>`` when a token is configured with
``--token-file`` or ``GREENBENCH_SERVER_TOKEN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from greenbench.errors import GreenbenchError

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default loopback only)."),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store directory (default: GREENBENCH_STORE or the user data dir)."),
    token_file: Optional[Path] = typer.Option(
        None, "--token-file", help="File holding the bearer token that guards writes (else GREENBENCH_SERVER_TOKEN)."
    ),
    trust: Optional[Path] = typer.Option(None, "--trust", help="Accept results only from the did:keys in this file."),
    max_result_mib: float = typer.Option(16, "--max-result-mib", min=0.001, help="Largest accepted result envelope, MiB."),
    max_car_mib: float = typer.Option(256, "--max-car-mib", min=0.001, help="Largest accepted CAR upload, MiB."),
    max_block_mib: float = typer.Option(
        1.0625, "--max-block-mib", min=0.001, help="Largest accepted block/put body, MiB (blocks are at most 1 MiB)."
    ),
    open_writes: bool = typer.Option(
        False, "--open-writes", help="Allow a non-loopback --host without a token (anyone who reaches it may write)."
    ),
) -> None:
    """Serve the store over HTTP: GET /ipfs/{cid}?format=raw|car, POST /api/v1/results, Kubo-style uploads."""
    import socket

    from greenbench import signing
    from greenbench.cli import render
    from greenbench.store.http import MiB, ServerConfig, create_app, read_token

    token = read_token(token_file)
    if host not in _LOOPBACK and token is None and not open_writes:
        raise GreenbenchError(
            f"refusing to serve on {host} with open writes: anyone who can reach it could upload blocks and results",
            "set a token (--token-file FILE or GREENBENCH_SERVER_TOKEN), or pass --open-writes if that is intended",
        )
    trusted = signing.read_trust_file(trust) if trust is not None else None
    config = ServerConfig(
        store_dir=store,
        token=token,
        trust=trusted,
        max_result_bytes=int(max_result_mib * MiB),
        max_car_bytes=int(max_car_mib * MiB),
        max_block_bytes=int(max_block_mib * MiB),
    )
    app = create_app(config)
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
    bound = sock.getsockname()
    if host not in _LOOPBACK and token is None:
        render.warn(
            f"listening on {host} without a token: anyone who can reach it may upload blocks and results; "
            "set --token-file or GREENBENCH_SERVER_TOKEN"
        )
    render.info(
        f"greenbench store {app.state.store.root if hasattr(app.state.store, 'root') else store} "
        f"served at http://{host if ':' not in host else '[' + host + ']'}:{bound[1]}"
        f" (writes {'need a bearer token' if token else 'open'}; Ctrl-C stops)"
    )
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root app."""
    app.command("serve")(serve_cmd)
