"""Publishing signed results: into the local store, to a greenbench server, or to an IPFS (Kubo) node.

Terms:
    envelope block: a DSSE envelope reduced to its signed fields (``payload``, ``payloadType`` and
        each signature's ``keyid``/``sig``) and encoded as canonical DAG-JSON; its CID (codec
        dag-json, sha2-256) is the result's address everywhere: the local store, a greenbench server
        and IPFS compute the same one, and anyone holding the block can verify both the CID and the
        signature.
    destination: ``--to`` absent: the local store only. ``http(s)://host:port``: a greenbench server
        (``POST /api/v1/results``), unless the URL answers the Kubo ``/api/v0/version`` probe like Kubo
        (a greenbench server answers it too, naming itself). ``kubo+http(s)://host:port``: a Kubo RPC
        endpoint, Kubo or a greenbench server (``dag/import`` of a one-block CAR, then ``pin/add``).

The envelope is always verified before it leaves the machine and is always kept in the local store
too, so ``publish`` prints a CID that ``greenbench store get`` can answer.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from greenbench.errors import GreenbenchError, VerificationError

__all__ = [
    "PublishOutcome",
    "normalize_envelope",
    "envelope_block",
    "index_info",
    "load_or_sign",
    "store_envelope",
    "push_to_server",
    "push_to_kubo",
    "destination_kind",
    "publish_file",
    "load_verified_results",
    "verify_entries",
    "result_index_entry",
    "reindex_store",
    "RESULT_BLOCK_PREFIX",
]

#: Every envelope block starts with these bytes (canonical DAG-JSON sorts "payload" first).
RESULT_BLOCK_PREFIX = b'{"payload":"'


@dataclass
class PublishOutcome:
    """What ``publish`` did.

    Attributes:
        cid: the envelope block's CID (text).
        signer: did:key of the signer.
        signed_now: the input was a bare result and was signed here.
        key_created: signing needed a key and it was created here.
        destination: ``local``, ``server`` or ``kubo``.
        url: the remote URL (None for local).
        stored_locally: the block was added to the local store (False: it was already there).
        store_dir: the local store's directory.
    """

    cid: str
    signer: str
    signed_now: bool = False
    key_created: bool = False
    destination: str = "local"
    url: str | None = None
    stored_locally: bool = False
    store_dir: str = ""
    remote: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "cid": self.cid,
            "signer": self.signer,
            "signed_now": self.signed_now,
            "key_created": self.key_created,
            "destination": self.destination,
            "url": self.url,
            "stored_locally": self.stored_locally,
            "store": self.store_dir,
        }


def normalize_envelope(env: dict) -> dict:
    """The signed fields of a DSSE envelope only, base64 respelled canonically (standard alphabet,
    padded), so one signed result has one CID however its producer spelled the base64.

    Raises:
        ValueError: payload or a sig is not base64 (verify the envelope first).
    """
    from greenbench.signing import _b64, b64decode

    sigs = []
    for s in env["signatures"]:
        entry = {"sig": _b64(b64decode(s["sig"]))}
        if "keyid" in s:
            entry["keyid"] = s["keyid"]
        sigs.append(entry)
    return {"payload": _b64(b64decode(env["payload"])), "payloadType": env["payloadType"], "signatures": sigs}


def envelope_block(env: dict):
    """``(CID, dag-json bytes)`` of the normalized envelope (codec dag-json, sha2-256)."""
    from greenbench.store import dagjson
    from greenbench.store.cid import cid_for

    block = dagjson.encode(normalize_envelope(env))
    return cid_for(block, "dag-json"), block


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def index_info(verified) -> dict:
    """What the local store's result index records for a verified envelope.

    Keys: ``signer``, ``profile``, ``backend``, ``hardware`` (``cpu_model``, ``gpu_models``),
    ``created``, ``metrics`` (the medians the leaderboard ranks by), plus ``sha256`` and ``subject``
    of the signed statement. Missing fields of a result are None, never guessed.
    """
    r = verified.result
    gpus = _get(r, "environment.gpu_models")
    return {
        "signer": verified.signer,
        "profile": _get(r, "profile.name"),
        "backend": _get(r, "backend"),
        "hardware": {
            "cpu_model": _get(r, "environment.cpu_model"),
            "gpu_models": list(gpus) if isinstance(gpus, list) else [],
        },
        "created": _get(r, "created"),
        "metrics": {
            "j_per_token": _get(r, "metrics.decode.j_per_token"),
            "tokens_per_s": _get(r, "metrics.decode.tokens_per_s"),
            "prefill_j_per_token": _get(r, "metrics.prefill.j_per_token"),
            "ttft_s": _get(r, "metrics.ttft_s"),
            "train_j_per_token": _get(r, "metrics.train.j_per_token"),
            "train_tokens_per_s": _get(r, "metrics.train.tokens_per_s"),
            "g_co2e_per_1k_tokens": _get(r, "carbon.g_co2e_per_1k_tokens"),
            "energy_method": _get(r, "energy.method"),
        },
        "workload": _get(r, "workload.kind"),
        "sha256": verified.sha256,
        "subject": verified.subject_name,
    }


def load_or_sign(path: str | os.PathLike, key_dir: str | os.PathLike | None = None):
    """Read ``path``: a DSSE envelope is verified as is; a result document is signed with the local key.

    Returns:
        ``(envelope, verified, signed_now, key_created)``.

    Raises:
        GreenbenchError: not JSON, or neither an envelope nor a JSON object (exit 2).
        VerificationError: an envelope that does not verify (exit 1).
    """
    from greenbench import signing

    path = Path(path)
    doc = signing.load_json_file(path)
    if signing.is_envelope(doc):
        return doc, signing.verify_envelope(doc), False, False
    if not isinstance(doc, dict):
        raise GreenbenchError(
            f"{path} is neither a result document nor a DSSE envelope (a JSON object expected)",
            "publish a result written by `greenbench run` or an envelope written by `greenbench sign`",
        )
    key, _, created = signing.init_key(key_dir)
    env = signing.sign_result(doc, key, path.name)
    return env, signing.verify_envelope(env), True, created


def store_envelope(env: dict, verified, store) -> tuple[Any, bool]:
    """Put the envelope block into ``store`` and index it. Returns ``(cid, newly_stored)``."""
    cid, block = envelope_block(env)
    existed = store.has(cid)
    store.put_verified(cid, block)
    store.index_result(cid, index_info(verified))
    return cid, not existed


def destination_kind(url: str, *, transport: Any = None, timeout_s: float = 10.0) -> str:
    """``kubo`` or ``server`` for a ``--to`` URL (``http(s)://`` URLs are probed for Kubo).

    Raises:
        GreenbenchError: an unsupported scheme.
    """
    if url.startswith(("kubo+http://", "kubo+https://")):
        return "kubo"
    if not url.startswith(("http://", "https://")):
        raise GreenbenchError(
            f"--to {url!r}: unsupported URL",
            "use http://HOST:PORT (a greenbench server) or kubo+http://HOST:5001 (a Kubo RPC endpoint)",
        )
    from greenbench.store.kubo import KuboClient, KuboError

    try:
        doc = KuboClient(url, timeout_s=timeout_s, transport=transport).version()
    except KuboError:
        return "server"
    # A greenbench server answers the Kubo probe too (it speaks a Kubo RPC subset), but says what it is:
    # results go to its results API, which verifies and indexes them.
    return "server" if "Greenbench" in doc else "kubo"


def push_to_server(url: str, env: dict, cid, *, token: str | None = None, transport: Any = None) -> dict:
    """POST the envelope to a greenbench server and check it reports our CID.

    Raises:
        VerificationError: the server assigned a different CID (or rejected the signature).
        GreenbenchError: unreachable or refused.
    """
    from greenbench.store.cid import CID
    from greenbench.store.remote import ServerClient

    reply = ServerClient(url, token=token, transport=transport).post_result(normalize_envelope(env))
    try:
        theirs = CID.decode(reply["cid"])
    except GreenbenchError:
        raise VerificationError(f"{url} answered a malformed CID {reply['cid']!r}") from None
    if theirs.to_v1() != cid:
        raise VerificationError(f"{url} stored the result as {reply['cid']}, but its CID is {cid}")
    return reply


def push_to_kubo(url: str, cid, block: bytes, *, token: str | None = None, transport: Any = None) -> dict:
    """Import a one-block CAR of the envelope into a Kubo node, pin it, and check the node's CID.

    Raises:
        VerificationError: the node reports a different root CID.
        GreenbenchError: unreachable or refused (Kubo's own message is passed on).
    """
    from greenbench.store.car import write_car
    from greenbench.store.cid import CID
    from greenbench.store.kubo import KuboClient

    buf = io.BytesIO()
    write_car(buf, [cid], [(cid, block)])
    client = KuboClient(url, transport=transport, auth=f"Bearer {token}" if token else None)
    roots = client.dag_import(buf.getvalue(), filename=f"{cid}.car")
    decoded = []
    for r in roots:
        try:
            decoded.append(CID.decode(r).to_v1())
        except GreenbenchError:
            raise VerificationError(f"Kubo at {client.base} reported a malformed root {r!r}") from None
    if decoded != [cid]:
        raise VerificationError(
            f"Kubo at {client.base} imported roots {roots}, expected exactly {cid}"
        )
    pins = client.pin_add(str(cid))
    if not any(_same_cid(p, cid) for p in pins):
        raise VerificationError(f"Kubo at {client.base} pinned {pins}, expected {cid}")
    return {"roots": roots, "pins": pins}


def _same_cid(text: str, cid) -> bool:
    from greenbench.store.cid import CID

    try:
        return CID.decode(text).to_v1() == cid
    except GreenbenchError:
        return False


def publish_file(
    path: str | os.PathLike,
    *,
    to: str | None = None,
    store_dir: str | os.PathLike | None = None,
    token: str | None = None,
    key_dir: str | os.PathLike | None = None,
    transport: Any = None,
) -> PublishOutcome:
    """Sign ``path`` if needed, keep the envelope in the local store, and push it to ``to``.

    Args:
        path: a result document or a DSSE envelope.
        to: None (local only), a greenbench server URL, or a Kubo RPC URL.
        store_dir: the local store (``--store``).
        token: bearer token for a greenbench server (or a Kubo node with ``API.Authorizations``).
        key_dir: where the signing key lives (default: the user config dir).
        transport: an ``httpx`` transport (tests).
    """
    from greenbench.store.local import open_store

    env, verified, signed_now, key_created = load_or_sign(path, key_dir)
    store = open_store(store_dir)
    cid, new = store_envelope(env, verified, store)
    outcome = PublishOutcome(
        cid=str(cid),
        signer=verified.signer,
        signed_now=signed_now,
        key_created=key_created,
        stored_locally=new,
        store_dir=str(getattr(store, "root", store_dir or "")),
    )
    if to is None:
        return outcome
    kind = destination_kind(to, transport=transport)
    outcome.destination = kind
    outcome.url = to
    if kind == "kubo":
        _, block = envelope_block(env)
        outcome.remote = push_to_kubo(to, cid, block, token=token, transport=transport)
    else:
        outcome.remote = push_to_server(to, env, cid, token=token, transport=transport)
    return outcome


def verify_entries(rows: Iterable[dict], get_block, trust: set[str] | None = None) -> tuple[list[dict], list[dict]]:
    """Fetch each indexed row's envelope block with ``get_block(cid)`` (which checks the bytes against the
    CID) and verify its signature; returns ``(entries, skipped)`` as :func:`load_verified_results`."""
    from greenbench import signing
    from greenbench.store import dagjson

    entries: list[dict] = []
    skipped: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        cid = row.get("cid") if isinstance(row, dict) else None
        if not isinstance(cid, str):
            skipped.append({"cid": None, "reason": f"index row without a CID: {str(row)[:80]}"})
            continue
        try:
            env = dagjson.decode(get_block(cid))
            v = signing.verify_envelope(env, trust)
        except GreenbenchError as exc:
            skipped.append({"cid": cid, "reason": exc.message})
            continue
        if (v.signer, v.sha256) in seen:  # the same signed result stored again (e.g. respelled base64)
            skipped.append({"cid": cid, "reason": "duplicate of a result already listed"})
            continue
        seen.add((v.signer, v.sha256))
        entries.append({"cid": cid, "signer": v.signer, "result": v.result})
    return entries, skipped


def load_verified_results(store, trust: set[str] | None = None, **filters: Any) -> tuple[list[dict], list[dict]]:
    """The indexed results of ``store`` whose block and signature still verify.

    Each indexed CID's block is re-read (the store re-hashes it) and its envelope re-verified, so a
    corrupted or tampered entry never reaches a leaderboard.

    Args:
        store: a :class:`~greenbench.store.local.LocalStore`.
        trust: if given, only these did:keys count.
        **filters: passed to ``store.query_results``.

    Returns:
        ``(entries, skipped)``: entries are ``{"cid", "signer", "result"}`` (the shape
        ``greenbench.leaderboard.build_rows`` takes); skipped are ``{"cid", "reason"}``.
    """
    return verify_entries(store.query_results(**filters), store.get_block, trust)


def result_index_entry(block: bytes):
    """``(cid, index info)`` when ``block`` is a stored result envelope whose signature verifies, else None.

    Used by ``greenbench store reindex`` to rebuild a lost result index from the blocks themselves: only a
    block that is the canonical envelope block of a verified result (so its CID is the result's CID
    everywhere) is indexed.

    Raises:
        StoreError: an envelope that does not verify (the caller reports it as skipped).
    """
    from greenbench import signing
    from greenbench.errors import StoreError
    from greenbench.store import dagjson

    if not block.startswith(RESULT_BLOCK_PREFIX):
        return None
    try:
        env = dagjson.decode(block)
    except StoreError:
        return None
    if not signing.is_envelope(env):
        return None
    try:
        verified = signing.verify_envelope(env)
    except GreenbenchError as exc:
        raise StoreError(f"a stored envelope does not verify: {exc.message}") from None
    cid, canonical = envelope_block(env)
    if canonical != bytes(block):
        return None
    return cid, index_info(verified)


def reindex_store(store):
    """Rebuild ``store``'s packed-block rows and its result index from what it holds (``store reindex``)."""
    return store.reindex(result_index_entry, RESULT_BLOCK_PREFIX)
