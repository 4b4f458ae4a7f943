"""The greenbench HTTP server (``greenbench serve``): a shared store for a team, readable by IPFS tools.

Modules: :mod:`.app` (``create_app``, ``ServerConfig``, the middleware: Host/Origin checks, CORS,
per-client limits, access log), :mod:`.runner` (uvicorn with header timeouts and per-client connection
limits, ``BackgroundServer``), :mod:`.common` (errors, uploads, the per-app context), and one module per
API: :mod:`.gateway` (trustless gateway, ``/ipfs/``), :mod:`.results` (``/api/v1/results``), :mod:`.kubo`
(Kubo RPC subset, ``/api/v0/``), :mod:`.pages` (``/`` and the leaderboard). Import the submodule you need.
"""
