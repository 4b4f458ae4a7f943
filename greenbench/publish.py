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
too, so ``publish`` prints a CID that ``greenbench store get`` can answer. A result signed here is also
written beside its file as ``<stem>.dsse.json``, as ``greenbench sign`` writes it.

Many at once: ``publish`` takes files and directories (every ``*.json`` below a directory that is a
greenbench result or a DSSE envelope; a result whose ``.dsse.json`` lies beside it is published through
that envelope). Reading, signing and verifying run in worker processes, a batch at a time; each batch's
new envelopes go into the store as one pack with one index transaction, and its ``.dsse.json`` files are
written with one filesystem sync (:func:`greenbench.fsutil.atomic_write_many`). Each envelope is verified
once, here, and the verdict and every field the leaderboard ranks are kept in the store's index
(:mod:`greenbench.leaderboard.fields`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from greenbench.errors import GreenbenchError, VerificationError
from greenbench.leaderboard.fields import _get  # a dotted path into a document, None where it is absent

__all__ = [
    "PublishOutcome",
    "PublishReport",
    "publish_paths",
    "collect_paths",
    "prepare_file",
    "refresh_index",
    "verify_results",
    "board_record",
    "normalize_envelope",
    "envelope_block",
    "index_info",
    "load_or_sign",
    "store_envelope",
    "push_to_server",
    "push_to_kubo",
    "destination_kind",
    "publish_file",
    "remote_records",
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
    path: str | None = None

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


def envelope_block(env: dict, normalized: bool = False):
    """``(CID, dag-json bytes)`` of the normalized envelope (codec dag-json, sha2-256).

    Args:
        normalized: ``env`` is already in the normalized form (an envelope greenbench just signed).
    """
    from greenbench.store import dagjson
    from greenbench.store.cid import cid_for

    block = dagjson.encode(env if normalized else normalize_envelope(env))
    return cid_for(block, "dag-json"), block


def board_record(verified) -> dict:
    """The leaderboard's columns of a verified envelope (:func:`greenbench.leaderboard.fields.record`),
    with the extractor's version and the verdict: ``ok``, or ``malformed: why`` for a validly signed
    result the leaderboard cannot rank (it is listed as skipped, with that reason)."""
    from greenbench.leaderboard.fields import FIELDS_VERSION, Malformed, record, static_json

    try:
        board = record(verified.result, signers=verified.signers or (verified.signer,), sha256=verified.sha256)
        board["static"] = static_json(board)
        board["verdict"] = "ok"
    except Malformed as exc:
        board = {"sha256": verified.sha256, "signers": list(verified.signers or (verified.signer,)),
                 "verdict": f"malformed: {exc}"}
    board["fields"] = FIELDS_VERSION
    return board


def index_info(verified) -> dict:
    """What the local store's result index records for a verified envelope.

    Keys: ``signer``, ``profile``, ``backend``, ``hardware`` (``cpu_model``, ``gpu_models``),
    ``created``, ``metrics`` (the medians the leaderboard ranks by), plus ``sha256`` and ``subject``
    of the signed statement, and ``board`` (:func:`board_record`). Missing fields of a result are None,
    never guessed.
    """
    r = verified.result
    gpus = _get(r, "environment.gpu_models")
    return {
        "board": board_record(verified),
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
    """Sign ``path`` if needed (writing ``<stem>.dsse.json`` beside it), keep the envelope in the local
    store, and push it to ``to``.

    Args:
        path: a result document or a DSSE envelope.
        to: None (local only), a greenbench server URL, or a Kubo RPC URL.
        store_dir: the local store (``--store``).
        token: bearer token for a greenbench server (or a Kubo node with ``API.Authorizations``).
        key_dir: where the signing key lives (default: the user config dir).
        transport: an ``httpx`` transport (tests).

    Raises:
        GreenbenchError: bad input, an unreachable or refusing destination (exit 2).
        VerificationError: an envelope, or a destination's answer, that does not verify (exit 1).
    """
    if Path(path).is_dir():
        raise GreenbenchError(f"{path} is a directory", "use publish_paths for directories")
    report = publish_paths([path], to=to, store_dir=store_dir, token=token, key_dir=key_dir, transport=transport)
    if report.failed:
        f = report.failed[0]
        cls = VerificationError if f["exit_code"] == 1 else GreenbenchError
        raise cls(f["error"], f["hint"])
    return report.outcomes[0]


# --------------------------------------------------------------------------- many files at once


@dataclass
class Prepared:
    """One input file, read, signed or verified, and encoded (in a worker process).

    Attributes:
        path: the input file.
        cid, block, info: the envelope block's CID (text; ``cid_obj`` parsed), its bytes, and its index rows
            (:meth:`greenbench.store.index.Index.result_rows`, made in the worker).
        signer: the (first) signer's did:key.
        signed_now: a bare result, signed here with the local key.
        key_created: signing it created the local key.
        sidecar, sidecar_bytes: where the envelope signed here goes (``<stem>.dsse.json``) and its bytes;
            None when nothing needs writing (not signed here, or the same envelope is already there).
        sidecar_seen, sidecar_merged: the bytes of the ``.dsse.json`` found there (None: none), and whether
            the new envelope is that one with this key's signature added (then nothing of it is lost;
            otherwise a different file there is kept as ``<name>.1``, ``.2``… when the new one is written).
        note: what the user should know about this file (an envelope beside it that was not this result's).
        skipped: why a file found in a directory is not published (not a result), else None.
        error, hint, exit_code: why it could not be published (exit code 1: a signature or hash that does
            not verify; 2: bad input), else None.
    """

    path: str
    cid: str | None = None
    block: bytes | None = None
    info: Any = None
    cid_obj: Any = None
    signer: str = ""
    signed_now: bool = False
    key_created: bool = False
    sidecar: str | None = None
    sidecar_bytes: bytes | None = None
    sidecar_seen: bytes | None = None
    sidecar_merged: bool = False
    note: str | None = None
    skipped: str | None = None
    error: str | None = None
    hint: str | None = None
    exit_code: int = 0

    def __getstate__(self) -> dict:
        # sent from a worker process through a pipe: an envelope written beside its result is the block and a
        # newline, sent once (100,000 results of 12 kB cross that pipe when a directory is published)
        state = dict(self.__dict__)
        data, block = self.sidecar_bytes, self.block
        if data is not None and block is not None and len(data) == len(block) + 1 and data.startswith(block) \
                and data.endswith(b"\n"):
            state["sidecar_bytes"] = True
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("sidecar_bytes") is True:
            state["sidecar_bytes"] = state["block"] + b"\n"
        self.__dict__.update(state)


@dataclass
class PublishReport:
    """What ``publish`` did with many inputs: one :class:`PublishOutcome` per published file (in input
    order, ``path`` set), the files skipped (found in a directory, not results) and those that failed."""

    outcomes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    key_created: bool = False
    envelopes_written: int = 0
    store_dir: str = ""
    notes: list = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((f["exit_code"] for f in self.failed), default=0)

    def to_json(self) -> dict:
        return {
            "published": [dict(o.to_json(), path=o.path) for o in self.outcomes],
            "skipped": self.skipped,
            "failed": self.failed,
            "notes": self.notes,
            "store": self.store_dir,
        }


def collect_paths(paths: Iterable[str | os.PathLike]) -> list[tuple[str, bool]]:
    """The files to publish: each file argument as given, and below each directory every ``*.json``
    (sorted; symbolic links to directories are not followed, unreadable directories are passed over),
    except the ``<stem>.dsse.json`` of a result that lies beside it: the result is collected, and
    :func:`prepare_file` publishes that envelope when it is the result's (else signs the result anew).
    Returns ``(path, found_in_a_directory)``.

    Raises:
        GreenbenchError: a path that does not exist.
    """
    out: list[tuple[str, bool]] = []
    for given in paths:
        p = str(Path(given))  # as pathlib spells it: "r.json/" and "d/./" are "r.json" and "d"
        if os.path.isdir(p):
            found = _json_files(p)
            # "<stem>.json" -> "<stem>.dsse.json" (signing.envelope_path_for, on strings: 100,000 paths)
            paired = {q[:-5] + ".dsse.json" for q in found if not q.endswith(".dsse.json")}
            out.extend((q, True) for q in found if q not in paired)
        elif os.path.exists(p):
            out.append((p, False))
        else:
            raise GreenbenchError(f"{p}: no such file or directory", "pass result files, envelopes or directories of them")
    return out


def _json_files(root: str) -> list[str]:
    """Every regular file (or link to one) named ``*.json``, not hidden, below ``root``, in path order."""
    found: list[str] = []
    stack = [root]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.name.endswith(".json") and not entry.name.startswith(".") and entry.is_file():
                        found.append(entry.path)
                except OSError:
                    continue
    return sorted(found, key=lambda q: q.split(os.sep))


_WORKER: dict = {}


def _worker_init(key_dir) -> None:
    _WORKER.clear()
    _WORKER["key_dir"] = key_dir


def _local_key():
    """The signing key of this process (created on first need, race-safe across workers)."""
    from greenbench import signing

    if "key" not in _WORKER:
        key, _, created = signing.init_key(_WORKER.get("key_dir"))
        _WORKER["key"], _WORKER["did"], _WORKER["created"] = key, signing.did_key(key), created
        return key, _WORKER["did"], created
    return _WORKER["key"], _WORKER["did"], False


def prepare_file(path: str | os.PathLike, from_directory: bool = False) -> Prepared:
    """Read one input and make its envelope block and index info (module docstring); never raises for a
    bad input (the error is in the returned :class:`Prepared`)."""
    from greenbench import signing
    from greenbench.canonical import canonical_bytes, canonical_bytes_of_json
    from greenbench.store.cid import cid_for
    from greenbench.store.index import Index

    path = Path(path)
    out = Prepared(str(path))
    try:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise GreenbenchError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from None
        doc, body = _canonical_result(raw)
        if doc is None:
            try:
                doc = signing._loads_strict(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise GreenbenchError(f"{path}: not valid JSON: {exc}",
                                      "pass a result document or a DSSE envelope written by greenbench") from None
        if signing.is_envelope(doc):
            verified = signing.verify_envelope(doc)
            cid, block = envelope_block(doc)
        elif not isinstance(doc, dict) or (from_directory and not str(doc.get("schema", "")).startswith("greenbench.result/")):
            if from_directory:
                out.skipped = "neither a greenbench result nor a DSSE envelope"
                return out
            raise GreenbenchError(
                f"{path} is neither a result document nor a DSSE envelope (a JSON object expected)",
                "publish a result written by `greenbench run` or an envelope written by `greenbench sign`",
            )
        else:
            key, did, created = _local_key()
            if body is None:
                try:
                    body = canonical_bytes_of_json(doc)  # decoded from JSON: string keys
                except ValueError as exc:
                    raise GreenbenchError(f"cannot sign {path.name}: {exc}") from None
            sidecar = signing.envelope_path_for(path)
            try:
                seen = sidecar.read_bytes()
            except OSError:
                seen = None
            beside = _envelope_of(seen, body)
            if beside is not None and (from_directory or did in beside[1].signers[1:] or
                                       (did in beside[1].signers and len(beside[1].signers) > 1)):
                # the envelope beside it is this result's, signed by others too: published as it is (signing
                # again would only drop their signatures); one this key alone signed is signed again (the
                # same bytes: Ed25519 is deterministic)
                env, verified = beside
                cid, block = envelope_block(env)
            else:
                env, verified = signing.sign_result_verified(doc, key, path.name, did, body)
                if beside is not None and did not in beside[1].signers and beside[1].payload == verified.payload:
                    # the same statement signed by others: this key's signature is added to theirs
                    env = dict(beside[0], signatures=[*beside[0]["signatures"], *env["signatures"]])
                    verified = signing.Verified(beside[1].signer, verified.statement, verified.result,
                                                (*beside[1].signers, did), verified.subject_name, verified.sha256,
                                                verified.payload)
                    out.sidecar_merged = True
                    out.note = (f"{sidecar} held this result signed by {', '.join(beside[1].signers)}; "
                                f"the local key's signature is added to it")
                    cid, block = envelope_block(env)
                    data = canonical_bytes(env) + b"\n"
                else:
                    try:
                        block = signing.envelope_bytes(env)  # = canonical_bytes(env) = its DAG-JSON block
                        cid, data = cid_for(block, "dag-json"), block + b"\n"
                    except ValueError:
                        cid, block = envelope_block(env, normalized=True)
                        data = canonical_bytes(env) + b"\n"
                    if seen is not None and seen != data:
                        why = "an envelope of other bytes" if beside is None and _is_json_envelope(seen) else \
                            "not an envelope" if beside is None else "an envelope of this result by other keys"
                        out.note = (f"{sidecar} was {why}; it is kept as {sidecar.name}.N beside it, "
                                    f"and the envelope signed now takes its place")
                out.signed_now, out.key_created = True, created
                if seen != data:
                    out.sidecar, out.sidecar_bytes, out.sidecar_seen = str(sidecar), data, seen
        out.cid, out.block, out.signer, out.cid_obj = str(cid), block, verified.signer, cid
        out.info = Index.result_rows(out.cid, index_info(verified))  # the index rows, made here
    except GreenbenchError as exc:
        out.error, out.hint, out.exit_code = exc.message, exc.hint, exc.exit_code
    return out


def _write_sidecars(items: list[Prepared]) -> dict[int, str]:
    """Write each item's envelope beside its result (one filesystem sync for all); a different file found
    there is kept first as ``<name>.1`` (``.2``…), unless the new envelope is that same one with a signature
    added. Returns ``{id(item): why}`` for those not written (the others are)."""
    from greenbench.fsutil import atomic_write_bytes, atomic_write_many

    failed: dict[int, str] = {}
    ready: list[tuple[Prepared, Path]] = []
    for p in items:
        target = Path(p.sidecar)
        try:
            if target.exists() or target.is_symlink():
                if not target.is_file() or target.is_symlink():
                    raise OSError(f"{target} is not a regular file")
                current = target.read_bytes()
                if current != p.sidecar_bytes and not (p.sidecar_merged and current == p.sidecar_seen):
                    kept = _keep_aside(target)
                    p.note = f"{target} was a different file; it is kept as {kept.name}, the new envelope takes its place"
        except OSError as exc:
            failed[id(p)] = f"its envelope was not written: {getattr(exc, 'strerror', None) or exc}"
            continue
        ready.append((p, target))
    try:
        atomic_write_many([(t, p.sidecar_bytes) for p, t in ready])
    except GreenbenchError:  # one of them cannot be written: each on its own, to say which
        for p, target in ready:
            try:
                atomic_write_bytes(target, p.sidecar_bytes)
            except (OSError, GreenbenchError) as exc:
                why = exc.message if isinstance(exc, GreenbenchError) else exc.strerror or str(exc)
                failed[id(p)] = f"its envelope {target} was not written ({why})"
    return failed


def _keep_aside(target: Path) -> Path:
    """Link ``target`` as ``<name>.N`` (the first N free) so that replacing it loses nothing; returns that path."""
    for n in range(1, 10_000):
        aside = target.with_name(f"{target.name}.{n}")
        try:
            os.link(target, aside)
            return aside
        except FileExistsError:
            continue
        except OSError:  # no hard links here: a copy
            import shutil

            if aside.exists():
                continue
            shutil.copy2(target, aside)
            return aside
    raise OSError(f"no free name to keep {target} aside")


def _canonical_result(raw: bytes) -> tuple[Any, bytes | None]:
    """``(document, its canonical bytes)`` when ``raw`` is a result object (not an envelope) written
    canonically (as ``greenbench run`` writes results; one final newline allowed), else ``(None, bytes or
    None)``: then ``raw`` is parsed again strictly, and the bytes, when given, are the canonical bytes of what
    that parse gives if it succeeds (a strict parse only refuses more). Decoding without the strict hooks is
    faster, and is safe here: text whose decoded document encodes back to the same bytes cannot have held a
    key twice (the encoding would be shorter) nor NaN (which has no canonical encoding)."""
    from greenbench import signing
    from greenbench.canonical import canonical_bytes_of_json

    if raw.find(b"\n", 0, len(raw) - 1) >= 0 or raw.find(b'": ', 0, 4096) >= 0:
        return None, None  # indented, or spaced as json.dumps spaces: not canonical (a newline in a string is "\n")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if type(doc) is not dict or signing.is_envelope(doc):
        return None, None
    try:
        body = canonical_bytes_of_json(doc)
    except ValueError:
        return None, None
    if len(raw) - len(body) not in (0, 1) or not raw.startswith(body) or (len(raw) > len(body) and raw[-1:] != b"\n"):
        return None, body  # parsed strictly next; if that succeeds, it decodes to this same document
    return doc, body


def _envelope_of(data: bytes | None, body: bytes):
    """``(envelope, Verified)`` when ``data`` is a valid envelope (any signer) of the result whose canonical
    bytes are ``body``; else None (absent, not an envelope, not verifying, or another result's)."""
    from greenbench import signing

    if data is None:
        return None
    try:
        env = signing._loads_strict(data)
        if not signing.is_envelope(env):
            return None
        verified = signing.verify_envelope(env)
    except (GreenbenchError, ValueError, UnicodeDecodeError):
        return None
    return (env, verified) if verified.sha256 == hashlib.sha256(body).hexdigest() else None


def _is_json_envelope(data: bytes) -> bool:
    from greenbench import signing

    try:
        return signing.is_envelope(signing._loads_strict(data))
    except (ValueError, UnicodeDecodeError):
        return False


def _prepare_chunk(chunk: list[tuple[str, bool]]) -> list[Prepared]:
    return [prepare_file(p, d) for p, d in chunk]


#: Inputs below this many are prepared in this process (starting worker processes costs more).
PARALLEL_MIN = 1000
_CHUNK = 200


def _prepared(items: list[tuple[str, bool]], key_dir, workers: int | None) -> Iterator[Prepared]:
    """:func:`prepare_file` of every item, in order: in worker processes for many items, a bounded number
    of chunks in flight (so a slow store never piles up prepared envelopes in memory)."""
    from collections import deque

    n = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if n <= 1 or len(items) < PARALLEL_MIN:
        _worker_init(key_dir)
        for p, d in items:
            yield prepare_file(p, d)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    done_chunks = 0
    try:
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                 initargs=(None if key_dir is None else str(key_dir),)) as pool:
            flight: deque = deque()
            todo = iter(chunks)
            try:
                for chunk in todo:
                    flight.append(pool.submit(_prepare_chunk, chunk))
                    if len(flight) >= 2 * n + 1:
                        break
                while flight:
                    done = flight.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        flight.append(pool.submit(_prepare_chunk, nxt))
                    done_chunks += 1
                    yield from done
            finally:
                for f in flight:
                    f.cancel()
    except (BrokenProcessPool, OSError):  # no worker processes here (killed, or none can start): this process
        _worker_init(key_dir)
        for chunk in chunks[done_chunks:]:
            yield from _prepare_chunk(chunk)


def publish_paths(
    paths: Iterable[str | os.PathLike],
    *,
    to: str | None = None,
    store_dir: str | os.PathLike | None = None,
    token: str | None = None,
    key_dir: str | os.PathLike | None = None,
    transport: Any = None,
    workers: int | None = None,
    progress: Any = None,
    batch: int = 2000,
) -> PublishReport:
    """Publish many files and directories (module docstring): every input that is not published is in
    the report's ``failed`` or ``skipped``, never silently dropped.

    Args:
        workers: processes that read, sign and verify (default: one per CPU, at most 8; used from
            :data:`PARALLEL_MIN` inputs on).
        progress: called as ``progress(n_done, n_total)`` as inputs are handled.
        batch: inputs stored per pack and index transaction.

    Raises:
        GreenbenchError: a path that does not exist, or a store that cannot be written.
    """
    from greenbench.store.cid import CID
    from greenbench.store.local import open_store

    items = collect_paths(paths)
    store = open_store(store_dir)
    report = PublishReport(store_dir=str(getattr(store, "root", store_dir or "")))
    pending: list[Prepared] = []
    kind = destination_kind(to, transport=transport) if to is not None and items else None

    def flush() -> None:
        if not pending:
            return
        new = store.put_results([(p.cid_obj, p.block, p.info) for p in pending])
        unwritten = _write_sidecars([p for p in pending if p.sidecar is not None])
        report.envelopes_written += sum(1 for p in pending if p.sidecar is not None) - len(unwritten)
        for p, fresh in zip(pending, new):
            if p.note is not None:
                report.notes.append({"path": p.path, "note": p.note})
            if id(p) in unwritten:
                report.failed.append({"path": p.path, "error": f"stored as {p.cid}, but {unwritten[id(p)]}",
                                      "hint": "make the envelope's place writable (or move what is there) and publish again",
                                      "exit_code": 2, "cid": p.cid, "stored_locally": True})
                continue
            outcome = PublishOutcome(cid=p.cid, signer=p.signer, signed_now=p.signed_now, key_created=p.key_created,
                                     stored_locally=fresh, store_dir=report.store_dir)
            outcome.path = p.path
            if kind is not None:
                outcome.destination, outcome.url = kind, to
                try:
                    if kind == "kubo":
                        outcome.remote = push_to_kubo(to, CID.decode(p.cid), p.block, token=token, transport=transport)
                    else:
                        from greenbench.store import dagjson

                        outcome.remote = push_to_server(to, dagjson.decode(p.block), CID.decode(p.cid), token=token,
                                                        transport=transport)
                except GreenbenchError as exc:
                    report.failed.append({"path": p.path, "error": exc.message, "hint": exc.hint,
                                          "exit_code": exc.exit_code, "cid": p.cid, "stored_locally": True})
                    continue
            report.outcomes.append(outcome)
        pending.clear()

    done = 0
    for p in _prepared(items, key_dir, workers):
        done += 1
        report.key_created |= p.key_created
        if p.error is not None:
            report.failed.append({"path": p.path, "error": p.error, "hint": p.hint, "exit_code": p.exit_code})
        elif p.skipped is not None:
            report.skipped.append({"path": p.path, "reason": p.skipped})
        else:
            pending.append(p)
            if len(pending) >= batch:
                flush()
        if progress is not None:
            progress(done, len(items))
    flush()
    return report


def refresh_index(store) -> int:
    """Extract again the index rows an older greenbench (or an older extractor) made, from their stored
    envelopes, each verified once more; returns how many rows were refreshed. A store that cannot be
    written is left as it is (0)."""
    from greenbench.leaderboard.fields import FIELDS_VERSION

    stale = store.stale_results(FIELDS_VERSION)
    if not stale:
        return 0
    items = []
    for cid in stale:
        items.append((cid, _reverified_info(store, cid)))
    try:
        return store.index_results(items)
    except (GreenbenchError, OSError):
        return 0


def _reverified_info(store, cid: str) -> dict:
    """Index info for a stored envelope, verified again; a block that is gone, damaged or does not verify
    gets a verdict saying so (and no leaderboard fields)."""
    from greenbench import signing
    from greenbench.leaderboard.fields import FIELDS_VERSION
    from greenbench.store import dagjson

    try:
        env = dagjson.decode(store.get_block(cid))
        return index_info(signing.verify_envelope(env))
    except GreenbenchError as exc:
        return {"board": {"fields": FIELDS_VERSION, "verdict": f"does not verify: {exc.message}"}}


def verify_results(store, progress=None) -> list[dict]:
    """``store verify``'s second half: re-read every indexed result's block (re-hashed against its CID)
    and verify its signature again, strictly. Verdicts that changed are written back to the index (when
    the store is writable): a result that stopped verifying is dropped from the leaderboard, one that
    verifies again (its block stored again from a good copy) comes back. Returns the results that do not
    verify, as ``{"cid", "reason"}``.
    """
    from greenbench import signing
    from greenbench.store import dagjson

    known = store.index.result_verdicts()
    bad, changed, healed = [], [], []
    for i, (cid, before) in enumerate(sorted(known.items()), 1):
        try:
            verified = signing.verify_envelope(dagjson.decode(store.get_block(cid)))
        except GreenbenchError as exc:
            bad.append({"cid": cid, "reason": exc.message})
            verdict = f"does not verify: {exc.message}"
            if verdict != before:
                changed.append((cid, verdict))
        else:
            if before is None or before.startswith("does not verify"):
                healed.append((cid, index_info(verified)))
        if progress is not None:
            progress(i, len(known))
    try:
        if changed:
            store.set_result_verdicts(changed)
        if healed:
            store.index_results(healed)
    except (GreenbenchError, OSError):
        pass  # a read-only store: reported, not recorded
    return bad


def remote_records(rows: Iterable[dict], get_block) -> tuple[list[dict], list[dict]]:
    """Leaderboard records of another server's results, verified here: each listed row's envelope block is
    fetched with ``get_block(cid)`` (which checks the bytes against the CID) and its signature verified
    strictly; nothing the server says about a result is believed. Returns ``(records, skipped)``."""
    from greenbench import signing
    from greenbench.store import dagjson

    records: list[dict] = []
    skipped: list[dict] = []
    for row in rows:
        cid = row.get("cid") if isinstance(row, dict) else None
        if not isinstance(cid, str):
            skipped.append({"cid": None, "reason": f"index row without a CID: {str(row)[:80]}"})
            continue
        try:
            verified = signing.verify_envelope(dagjson.decode(get_block(cid)))
        except GreenbenchError as exc:
            skipped.append({"cid": cid, "reason": exc.message})
            continue
        records.append(dict(board_record(verified), cid=cid))
    return records, skipped


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
