"""A client for another greenbench server (``greenbench serve``): publish results, fetch blocks.

The server is not trusted: a block fetched from it is checked against its CID before it is returned,
the CID it assigns to a published result must equal the one computed here, no reply may be larger
than the client expects (``max_reply_bytes``; a block at most the 2 MiB block limit), and all the
calls of one client share one deadline (``deadline_s``), so a slow or hostile server cannot keep
``leaderboard --from`` waiting or fill its memory. Network failures, refusals and those limits raise
:class:`~greenbench.errors.GreenbenchError` (exit 2) naming the URL and the fix; a block whose bytes do
not match its CID raises :class:`~greenbench.errors.VerificationError`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from greenbench.errors import GreenbenchError, VerificationError

__all__ = ["ServerClient", "server_base_url"]



def _fix(flag: str) -> str:
    return f"start it with `greenbench serve` there, or check the {flag} URL (default port 8787)"

#: Largest reply a client reads (the result index of a large server fits many times over).
MAX_REPLY_BYTES = 64 << 20
#: Largest block reply (the trustless gateway spec's 2 MiB block limit).
MAX_BLOCK_BYTES = 2 << 20
#: All the calls of one client together (e.g. ``leaderboard --from``: the index and every envelope).
DEADLINE_S = 300.0


def server_base_url(url: str) -> str:
    """``http(s)://host:port[/prefix][/]`` -> without the trailing slash.

    Raises:
        GreenbenchError: not an http(s) URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GreenbenchError(
            f"{url!r} is not a server URL",
            "use http://HOST:PORT for a greenbench server or kubo+http://HOST:5001 for an IPFS (Kubo) node",
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass
class ServerClient:
    """Calls on one greenbench server.

    Args:
        url: ``http://host:port`` of the server.
        token: bearer token for writes (the server's ``--token-file`` / ``GREENBENCH_SERVER_TOKEN``).
        timeout_s: per-request timeout.
        transport: an ``httpx`` transport (tests).
        flag: the command-line option the URL came from (``--to``, ``--from``), named in hints.
    """

    url: str
    token: str | None = None
    timeout_s: float = 60.0
    transport: Any = None
    deadline_s: float = DEADLINE_S
    max_reply_bytes: int = MAX_REPLY_BYTES
    flag: str = "--to"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.base = server_base_url(self.url)
        self._deadline = time.monotonic() + self.deadline_s

    def _request(self, method: str, path: str, max_bytes: int | None = None, **kw):
        """One call; the reply's body is read here, refused past ``max_bytes`` (default
        ``max_reply_bytes``), and the call fails once the client's deadline has passed."""
        import httpx

        headers = kw.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        target = f"{self.base}{path}"
        limit = self.max_reply_bytes if max_bytes is None else max_bytes
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise GreenbenchError(
                f"greenbench server at {self.base}: gave up after {self.deadline_s:g} s for all requests", _fix(self.flag)
            )
        timeout = httpx.Timeout(min(self.timeout_s, left))
        try:
            with httpx.Client(timeout=timeout, transport=self.transport, follow_redirects=False) as c:
                with c.stream(method, target, headers=headers, **kw) as resp:
                    declared = resp.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > limit:
                        raise GreenbenchError(f"{self.base}{path} answered {declared} bytes, more than the {limit} expected")
                    body = bytearray()
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise GreenbenchError(f"{self.base}{path} answered more than the {limit} bytes expected")
                        if time.monotonic() > self._deadline:
                            raise GreenbenchError(
                                f"greenbench server at {self.base}: gave up after {self.deadline_s:g} s for all requests", _fix(self.flag)
                            )
                    return httpx.Response(resp.status_code, headers=resp.headers, content=bytes(body), request=resp.request)
        except httpx.TimeoutException:
            raise GreenbenchError(f"greenbench server at {self.base} did not answer within {timeout.read:g} s", _fix(self.flag)) from None
        except httpx.HTTPError as exc:
            raise GreenbenchError(f"cannot reach greenbench server at {self.base}: {exc}", _fix(self.flag)) from None

    @staticmethod
    def _reason(resp) -> str:
        try:
            doc = resp.json()
        except ValueError:
            return resp.text[:200] or resp.reason_phrase
        if isinstance(doc, dict):
            return str(doc.get("error") or doc.get("Message") or doc)
        return str(doc)[:200]

    def post_result(self, envelope: dict) -> dict:
        """``POST /api/v1/results``; returns the server's ``{"cid", "signer", …}``.

        Raises:
            VerificationError: the server says the envelope does not verify (HTTP 422).
            GreenbenchError: unreachable, unauthorized, too large, or any other refusal.
        """
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        resp = self._request("POST", "/api/v1/results", content=body, headers={"Content-Type": "application/json"})
        if resp.status_code in (200, 201):
            try:
                doc = resp.json()
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or not isinstance(doc.get("cid"), str):
                raise GreenbenchError(f"{self.base} did not answer like a greenbench server: {resp.text[:200]!r}", _fix(self.flag))
            return doc
        reason = self._reason(resp)
        if resp.status_code == 401:
            raise GreenbenchError(
                f"{self.base} refused the result: {reason}",
                "pass the server's token with --token-file FILE or GREENBENCH_SERVER_TOKEN",
            )
        if resp.status_code == 422:
            raise VerificationError(f"{self.base} rejected the envelope: {reason}")
        if resp.status_code in (404, 405):
            raise GreenbenchError(
                f"{self.base} is not a greenbench server (POST /api/v1/results answered HTTP {resp.status_code})",
                f"for an IPFS node use {self.flag} kubo+http://HOST:5001",
            )
        raise GreenbenchError(f"{self.base} refused the result (HTTP {resp.status_code}): {reason}")

    def get_block(self, cid) -> bytes:
        """Fetch ``/ipfs/{cid}?format=raw`` and check it against ``cid``.

        Raises:
            GreenbenchError: not found or unreachable.
            VerificationError: the bytes do not hash to ``cid``.
        """
        from greenbench.store.cid import CID

        cid = CID.decode(str(cid))
        resp = self._request(
            "GET", f"/ipfs/{cid}", max_bytes=MAX_BLOCK_BYTES, params={"format": "raw"}, headers={"Accept": "application/vnd.ipld.raw"}
        )
        if resp.status_code != 200:
            raise GreenbenchError(f"{self.base} has no block {cid} (HTTP {resp.status_code}): {self._reason(resp)}")
        if not cid.verify(resp.content):
            raise VerificationError(f"{self.base} served bytes for {cid} that do not match the CID")
        return resp.content

    def results(self) -> list[dict]:
        """The server's result index (``GET /api/v1/results``)."""
        resp = self._request("GET", "/api/v1/results")
        if resp.status_code != 200:
            raise GreenbenchError(f"{self.base} did not list results (HTTP {resp.status_code}): {self._reason(resp)}")
        try:
            doc = resp.json()
        except ValueError:
            raise GreenbenchError(
                f"{self.base}/api/v1/results did not answer JSON",
                f"point {self.flag} at a greenbench server (`greenbench serve`)",
            ) from None
        rows = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise GreenbenchError(f"{self.base}/api/v1/results is not a greenbench result index")
        return rows
