"""`greenbench serve`: the store over HTTP (trustless gateway, results API, Kubo RPC subset, leaderboard).

Binds 127.0.0.1:8787 by default. Writes (``POST /api/v1/results``, ``/api/v0/block/put``, ``dag/import``,
``pin/add``, ``pin/rm``) need ``Authorization: Bearer <token>`` when a token is configured with
``--token-file`` or ``GREENBENCH_SERVER_TOKEN``; browsers may write only from ``--cors-origin`` origins.
One access-log line per request goes to stderr (``--quiet`` drops them).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

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
    trust: Optional[Path] = typer.Option(None, "--trust", help="Accept results only from the did:keys in this file (and rank them). Without it any valid signature is accepted, and the leaderboard ranks the keys of the config's `trust`, of `keys trust`, else the local key."),
    max_result_mib: float = typer.Option(16, "--max-result-mib", min=0.001, help="Largest accepted result envelope, MiB."),
    max_car_mib: float = typer.Option(256, "--max-car-mib", min=0.001, help="Largest accepted CAR upload, MiB."),
    max_block_mib: float = typer.Option(
        1.0625, "--max-block-mib", min=0.001, help="Largest accepted block/put body, MiB (blocks are at most 1 MiB)."
    ),
    open_writes: bool = typer.Option(
        False, "--open-writes", help="Allow a non-loopback --host without a token (anyone who reaches it may write)."
    ),
    cors_origin: List[str] = typer.Option(
        [], "--cors-origin", metavar="ORIGIN", help="A web origin (https://host[:port]) whose pages may write and read with CORS; repeatable."
    ),
    public_url: List[str] = typer.Option(
        [], "--public-url", metavar="URL", help="A URL clients reach this server at (e.g. behind a proxy); repeatable."
    ),
    allow_host: List[str] = typer.Option(
        [], "--allow-host", metavar="NAME", help="Another host name clients may use to reach this server; repeatable."
    ),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1, help="Seconds a client has to send a request's headers."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1, help="Seconds a request body may stall before 408."),
    max_client_requests: int = typer.Option(64, "--max-client-requests", min=1, help="Requests in flight per client address."),
    max_client_connections: int = typer.Option(128, "--max-client-connections", min=1, help="Open connections per client address."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No access log on stderr."),
) -> None:
    """Serve the store over HTTP: trustless gateway, results API, Kubo RPC subset and the web leaderboard."""
    from greenbench.cli import render
    from greenbench.server.app import ServerConfig, create_app, read_token, stderr_log
    from greenbench.server.common import MiB
    from greenbench.server.runner import bind, uvicorn_config

    token = read_token(token_file)
    if host not in _LOOPBACK and token is None and not open_writes:
        raise GreenbenchError(
            f"refusing to serve on {host} with open writes: anyone who can reach it could upload blocks and results",
            "set a token (--token-file FILE or GREENBENCH_SERVER_TOKEN), or pass --open-writes if that is intended",
        )
    from greenbench import trust as trust_policy

    board_trust = trust_policy.resolve(trust)  # whose results the leaderboard ranks
    trusted = set(board_trust.keys) if trust is not None else None  # whose results are accepted at all
    config = ServerConfig(
        store_dir=store,
        token=token,
        trust=trusted,
        board_trust=board_trust,
        trust_from=lambda: trust_policy.resolve(trust),  # edits of the trust file apply without a restart
        max_result_bytes=int(max_result_mib * MiB),
        max_car_bytes=int(max_car_mib * MiB),
        max_block_bytes=int(max_block_mib * MiB),
        cors_origins=tuple(cors_origin),
        public_urls=tuple(public_url),
        allow_hosts=tuple(allow_host),
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_requests_per_client=max_client_requests,
        max_connections_per_client=max_client_connections,
        log=None if quiet else stderr_log,
        worker_process=True,
    )
    app = create_app(config)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    if host not in _LOOPBACK and token is None:
        render.warn(
            f"listening on {host} without a token: anyone who can reach it may upload blocks and results; "
            "set --token-file or GREENBENCH_SERVER_TOKEN"
        )
    base = public_url[0].rstrip("/") if public_url else f"http://{host if ':' not in host else '[' + host + ']'}:{bound}"
    kubo = base.replace("http://", "kubo+http://", 1).replace("https://", "kubo+https://", 1)
    render.info(
        f"greenbench serving the store {app.state.store.root} at {base} "
        f"(writes {'need a bearer token' if token else 'open'}; Ctrl-C stops)\n"
        f"  leaderboard        {base}/  (ranks results signed by {board_trust.source})\n"
        f"  trustless gateway  {base}/ipfs/{{cid}}?format=raw|car\n"
        f"  results API        {base}/api/v1/results\n"
        f"  Kubo RPC           {base}/api/v0/  (publish --to {base} or --to {kubo})"
    )
    import asyncio

    import uvicorn

    from greenbench.server import pages

    class Server(uvicorn.Server):
        async def serve(self, sockets=None):
            warming = asyncio.ensure_future(pages.warm(app.state.ctx))  # rank a large board before its first visitor
            try:
                await super().serve(sockets=sockets)
            finally:
                warming.cancel()

    server = Server(uvicorn_config(app, config))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root app."""
    app.command("serve")(serve_cmd)
