"""A client for the Kubo (go-ipfs) RPC API: push CARs into an IPFS node and pin them.

Terms:
    Kubo RPC: the node's control API (default ``http://127.0.0.1:5001/api/v0/…``). Every call is an
        HTTP POST; arguments go in the query string (``?arg=CID``), files in a ``multipart/form-data``
        body; replies are JSON (or newline-delimited JSON for streaming commands). Errors come back as
        HTTP 500 with ``{"Message": …, "Code": 0, "Type": "error"}``.
    dag/import: takes a CAR, stores every block and (by default) pins its roots; replies one
        ``{"Root": {"Cid": {"/": cid}, "PinErrorMsg": ""}}`` line per root.
    pin/add: pins a CID recursively so the node's garbage collector keeps it; replies
        ``{"Pins": [cid, …]}``.

Kubo is a different program, so this module trusts nothing it says: the root the node reports must
be the CID greenbench computed. Network failures, refusals and non-Kubo replies raise
:class:`~greenbench.errors.GreenbenchError` (exit 2) naming the URL and how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from greenbench.errors import GreenbenchError

__all__ = ["KuboClient", "KuboError", "kubo_base_url", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 60.0
_FIX = "start the node (`ipfs daemon`) or pass its RPC address, e.g. --to kubo+http://127.0.0.1:5001"


class KuboError(GreenbenchError):
    """The Kubo node refused a call or answered something that is not Kubo RPC."""


def kubo_base_url(url: str) -> str:
    """``kubo+http://h:p`` / ``http://h:p[/]`` -> ``http://h:p`` (no trailing slash, no /api/v0).

    Raises:
        GreenbenchError: not an http(s) URL with a host.
    """
    raw = url[len("kubo+") :] if url.startswith("kubo+") else url
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GreenbenchError(
            f"{url!r} is not a Kubo RPC URL", "use kubo+http://HOST:PORT (the node's API address, port 5001 by default)"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/api/v0"):
        path = path[: -len("/api/v0")]
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass
class KuboClient:
    """Calls on one Kubo RPC endpoint.

    Args:
        url: the RPC address (``http://127.0.0.1:5001``, ``kubo+http://…`` also accepted).
        timeout_s: per-request timeout.
        transport: an ``httpx`` transport (tests); default: real network.
        auth: an ``Authorization`` header value for nodes with ``API.Authorizations`` set.
    """

    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    transport: Any = None
    auth: str | None = None

    def __post_init__(self) -> None:
        self.base = kubo_base_url(self.url)

    # ------------------------------------------------------------------ plumbing

    def _post(self, cmd: str, params: dict | None = None, files: dict | None = None):
        import httpx

        endpoint = f"{self.base}/api/v0/{cmd}"
        headers = {"Authorization": self.auth} if self.auth else {}
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=False) as client:
                resp = client.post(endpoint, params=params, files=files, headers=headers)
        except httpx.TimeoutException:
            raise GreenbenchError(
                f"Kubo RPC at {self.base} did not answer {cmd} within {self.timeout_s:g} s", _FIX
            ) from None
        except httpx.HTTPError as exc:
            raise GreenbenchError(f"cannot reach Kubo RPC at {self.base} ({cmd}): {exc}", _FIX) from None
        if resp.status_code == 200:
            return resp
        message = _kubo_message(resp)
        if resp.status_code in (401, 403):
            raise KuboError(
                f"Kubo at {self.base} refused {cmd} (HTTP {resp.status_code}){': ' + message if message else ''}",
                "give the node's RPC credentials, or allow this client in its API.Authorizations / API.HTTPHeaders",
            )
        if resp.status_code in (404, 405) or (resp.status_code >= 400 and message is None):
            raise KuboError(
                f"{self.base} is not a Kubo RPC endpoint: {cmd} answered HTTP {resp.status_code}",
                "point --to at the node's RPC API (port 5001), not its gateway (8080) or another server",
            )
        raise KuboError(f"Kubo at {self.base} failed {cmd}: {message}")

    @staticmethod
    def _json(resp, cmd: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise KuboError(f"Kubo {cmd} reply is not JSON: {resp.text[:200]!r}") from None

    # ------------------------------------------------------------------ commands

    def version(self) -> dict:
        """``/api/v0/version``: ``{"Version": …, "Commit": …, …}``."""
        doc = self._json(self._post("version"), "version")
        if not isinstance(doc, dict) or not isinstance(doc.get("Version"), str):
            raise KuboError(f"{self.base}/api/v0/version did not answer like Kubo: {str(doc)[:200]}")
        return doc

    def is_kubo(self) -> bool:
        """Whether the endpoint answers ``version`` like Kubo (False on any refusal or odd reply)."""
        try:
            self.version()
            return True
        except KuboError:
            return False

    def dag_import(self, car: bytes, *, pin_roots: bool = True, filename: str = "data.car") -> list[str]:
        """Import a CARv1 (``/api/v0/dag/import``); return the root CIDs the node reports.

        Raises:
            KuboError: the node refused the CAR or could not pin a root.
        """
        resp = self._post(
            "dag/import",
            params={"pin-roots": "true" if pin_roots else "false"},
            files={"file": (filename, car, "application/vnd.ipld.car")},
        )
        roots: list[str] = []
        for line in resp.text.splitlines():
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                raise KuboError(f"Kubo dag/import reply line is not JSON: {line[:200]!r}") from None
            root = doc.get("Root") if isinstance(doc, dict) else None
            if root is None:
                continue  # e.g. {"Stats": …}
            try:
                cid = root["Cid"]["/"]
            except (KeyError, TypeError):
                raise KuboError(f"Kubo dag/import reply has no Root.Cid: {line[:200]!r}") from None
            if root.get("PinErrorMsg"):
                raise KuboError(f"Kubo imported {cid} but could not pin it: {root['PinErrorMsg']}")
            roots.append(cid)
        return roots

    def pin_add(self, cid: str) -> list[str]:
        """Pin ``cid`` recursively (``/api/v0/pin/add?arg=CID``); return the pinned CIDs."""
        doc = self._json(self._post("pin/add", params={"arg": cid}), "pin/add")
        pins = doc.get("Pins") if isinstance(doc, dict) else None
        if not isinstance(pins, list):
            raise KuboError(f"Kubo pin/add reply has no Pins: {str(doc)[:200]}")
        return [str(p) for p in pins]

    def block_get(self, cid: str) -> bytes:
        """Raw bytes of one block (``/api/v0/block/get?arg=CID``); the caller verifies them."""
        return self._post("block/get", params={"arg": cid}).content

    def block_put(self, data: bytes, *, codec: str = "raw") -> dict:
        """Store one block (``/api/v0/block/put``); return ``{"Key": cid, "Size": n}``."""
        resp = self._post(
            "block/put",
            params={"cid-codec": codec, "mhtype": "sha2-256", "mhlen": "32"},
            files={"file": ("block", data, "application/octet-stream")},
        )
        return self._json(resp, "block/put")


def _kubo_message(resp) -> str | None:
    """The ``Message`` of a Kubo error body, or None when the body is not a Kubo error."""
    try:
        doc = resp.json()
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str) and doc.get("Type") == "error":
        return doc["Message"]
    return None

