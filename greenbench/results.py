"""The result document: what ``greenbench run`` writes, signs and publishes.

A result is a JSON object with ``schema = "greenbench.result/1"``. Its bytes on disk are canonical
(JCS, :mod:`greenbench.canonical`): the same document always has the same bytes, so its sha256 and
CID are stable. :func:`load` rejects unknown schema versions with a clear message and migrates older
ones through :data:`MIGRATIONS`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from greenbench.canonical import canonical_bytes as _jcs
from greenbench.errors import GreenbenchError
from greenbench.fsutil import atomic_write_bytes

SCHEMA = "greenbench.result/1"
SCHEMA_PREFIX = "greenbench.result/"

#: Paths every result has (CONTRACT.md); values may be null where a run could not produce them
#: (a partial run, or a training result's decode metrics).
COMMON_PATHS = (
    "schema",
    "profile.name",
    "profile.digest",
    "backend",
    "workload.kind",
    "energy.method",
    "energy.meters",
    "environment.greenbench_version",
    "environment.cpu_model",
)
REQUIRED_PATHS = (
    *COMMON_PATHS,
    "workload.prompt_tokens",
    "workload.new_tokens",
    "workload.generated_token_ids",
    "metrics.ttft_s",
    "metrics.prefill.j_per_token",
    "metrics.decode.j_per_token",
    "metrics.decode.tokens_per_s",
    "metrics.decode.j_per_token_samples",
    "metrics.decode.tokens_per_s_samples",
    "energy.method",
    "energy.meters",
    "carbon.region",
    "carbon.intensity_g_per_kwh",
    "carbon.g_co2e",
    "carbon.g_co2e_per_1k_tokens",
    "environment.greenbench_version",
    "environment.cpu_model",
)
#: A measured block of code (the pytest plugin, ``greenbench measure --runs``): ``workload.kind = "measure"``.
MEASURE_PATHS = (
    *COMMON_PATHS,
    "workload.digest",
    "metrics.block.energy_j",
    "metrics.block.energy_j_samples",
    "metrics.block.duration_s",
    "metrics.block.duration_s_samples",
)
TRAINING_PATHS = (
    "metrics.train.tokens_per_s",
    "metrics.train.j_per_token",
    "metrics.train.loss_first",
    "metrics.train.loss_last",
)

#: version -> function(doc) -> doc of the next version. Empty while /1 is the only version.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def get_path(doc: dict, path: str, default: Any = KeyError) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if default is KeyError:
                raise KeyError(path)
            return default
        cur = cur[part]
    return cur


def missing_paths(doc: dict) -> list[str]:
    kind = get_path(doc, "workload.kind", None)
    if kind == "measure":
        paths = MEASURE_PATHS
    else:
        paths = REQUIRED_PATHS + (TRAINING_PATHS if kind == "training" else ())
    out = []
    for p in paths:
        try:
            get_path(doc, p)
        except KeyError:
            out.append(p)
    return out


def validate(doc: dict) -> None:
    """Raise ValueError if a contract path is missing or a number is not finite."""
    missing = missing_paths(doc)
    if missing:
        raise ValueError(f"result document lacks {', '.join(missing)}")
    if doc["energy"]["method"] not in ("counter", "estimate", "simulated"):
        raise ValueError(f"energy.method must be counter/estimate/simulated, got {doc['energy']['method']!r}")
    for m in doc["energy"]["meters"]:
        if m.get("method") not in ("counter", "estimate", "simulated"):
            raise ValueError(f"meter row {m} has no valid method")


def canonical_bytes(doc: dict) -> bytes:
    """The one encoder for results: JCS bytes (sorted keys, no NaN, no white space)."""
    validate(doc)
    return _jcs(doc)


def sanitize(value: Any) -> Any:
    """Replace NaN/inf with None (JSON has no NaN; a missing number is null)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


def result_filename(doc: dict, when: _dt.datetime | None = None) -> str:
    when = when or _dt.datetime.now(_dt.timezone.utc)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(doc["profile"]["name"]))
    suffix = "-partial" if doc.get("partial") else ""
    return f"{name}-{when.strftime('%Y%m%dT%H%M%S')}-{when.microsecond // 1000:03d}Z{suffix}.json"


def write(doc: dict, out_dir: str | Path) -> Path:
    """Write ``doc`` atomically as ``<out_dir>/<profile>-<timestamp>.json``; returns the path."""
    data = canonical_bytes(doc)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GreenbenchError(f"--out {out} exists and is not a directory", "give a directory for results")
    return atomic_write_bytes(out / result_filename(doc), data)


def _read(path: str | Path) -> tuple[Path, bytes]:
    p = Path(path)
    try:
        return p, p.read_bytes()
    except FileNotFoundError:
        raise GreenbenchError(
            f"result file not found: {p}", "give the path of a JSON file written by `greenbench run`"
        ) from None
    except OSError as exc:
        raise GreenbenchError(f"cannot read {p}: {exc.strerror or exc}") from None


def load(path: str | Path) -> dict:
    """Read a result document, migrating older schema versions.

    Raises:
        GreenbenchError: missing/unreadable file, not JSON, not a greenbench result, an unknown
            (newer) schema version, or missing contract paths.
    """
    p, raw = _read(path)
    return loads(raw, source=str(p))


class _NonFinite(float):
    """A NaN, Infinity or overflowing number met while parsing, kept so its JSON path can be named."""


def _parse_constant(name: str) -> float:
    return _NonFinite("nan")


def _parse_float(text: str) -> float:
    v = float(text)
    return v if math.isfinite(v) else _NonFinite("inf")


def _non_finite_path(value: Any, path: str = "") -> str | None:
    if isinstance(value, _NonFinite):
        return path or "(the document)"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite_path(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def parse_json(raw: bytes | str, source: str) -> Any:
    """JSON that is bad input if it holds NaN, Infinity or a number too large for a float (names the path)."""
    try:
        doc = json.loads(raw, parse_constant=_parse_constant, parse_float=_parse_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise GreenbenchError(f"{source} is not valid JSON: {exc}", "give a result file written by `greenbench run`") from None
    bad = _non_finite_path(doc)
    if bad:
        raise GreenbenchError(
            f"{source}: {bad} is not a finite number (NaN, Infinity or out of range)",
            "results hold finite numbers or null; the file is damaged or was not written by greenbench",
        )
    return doc


def loads(raw: bytes | str, source: str = "<result>") -> dict:
    doc = parse_json(raw, source)
    if not isinstance(doc, dict):
        raise GreenbenchError(f"{source} is not a greenbench result (expected a JSON object)")
    if "payloadType" in doc and "payload" in doc:
        raise GreenbenchError(
            f"{source} is a signed envelope, not a bare result",
            "use `greenbench verify` on envelopes, or pass the result file itself",
        )
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise GreenbenchError(
            f"{source} is not a greenbench result (schema is {schema!r}, expected {SCHEMA!r})",
            "give a result file written by `greenbench run`",
        )
    try:
        version = int(schema[len(SCHEMA_PREFIX):])
    except ValueError:
        raise GreenbenchError(f"{source}: malformed schema {schema!r}") from None
    current = int(SCHEMA[len(SCHEMA_PREFIX):])
    if version > current:
        raise GreenbenchError(
            f"{source} has schema {schema}, newer than this greenbench understands ({SCHEMA})",
            "upgrade greenbench (pip install -U greenbench) to read it",
        )
    while version < current:
        if version not in MIGRATIONS:
            raise GreenbenchError(f"{source} has schema {schema}, which this greenbench cannot migrate")
        doc = MIGRATIONS[version](doc)
        version += 1
    missing = missing_paths(doc)
    if missing:
        raise GreenbenchError(
            f"{source} is not a complete greenbench result: missing {', '.join(missing)}",
            "re-run the benchmark with this version of greenbench",
        )
    return doc


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def load_any(path: str | Path) -> dict:
    """A result document from a bare result file or a signed DSSE envelope (whose signature is verified)."""
    p, raw = _read(path)
    doc = parse_json(raw, str(p))
    if isinstance(doc, dict) and "payloadType" in doc and "payload" in doc:
        from greenbench.signing import verify_envelope

        result = verify_envelope(doc).result
        try:
            data = _jcs(result)
        except ValueError as exc:  # e.g. a number too large for a float inside the signed payload
            raise GreenbenchError(f"{p}: the signed result cannot be read: {exc}",
                                  "results hold finite numbers or null; the envelope was not made by greenbench") from None
        return loads(data, source=str(p))
    return loads(raw, source=str(p))
