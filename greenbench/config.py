"""The user configuration file and the effective settings (``greenbench config show|path``).

The file is ``<config dir>/config.toml`` (``GREENBENCH_CONFIG_DIR`` moves the directory; on Linux the
default is ``~/.config/greenbench``). Its keys:

    region = "FRA"          grid region for carbon when neither --region nor a profile gives one
    pue = 1.2               facility energy / IT energy (>= 1.0) applied to carbon
    store = "/path/store"   the local content-addressed store (as --store / GREENBENCH_STORE)
    trust = "/path/trust"   the trust file read by verify, leaderboard and serve (as --trust); without it,
                            <config dir>/trust.txt if `greenbench keys trust add` made one, else only
                            the local signing key is trusted (greenbench.trust)

An unknown key is an error (exit 2, with the closest known key): a misspelt ``regoin`` silently ignored
would put every result under the world average. Each setting's effective value comes from the first of:
the command line, an environment variable, this file, the built-in default; ``config show`` prints the
value and where it came from.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError

__all__ = ["KEYS", "path", "read", "effective"]

#: key -> (type description, environment variable or None)
KEYS: dict[str, tuple[str, str | None]] = {
    "region": ("a region code such as \"FRA\" or \"US-CA\"", "GREENBENCH_REGION"),
    "pue": ("a number >= 1.0", "GREENBENCH_PUE"),
    "store": ("a directory path", "GREENBENCH_STORE"),
    "trust": ("a trust file path", None),
}


def path() -> Path:
    """Where the config file is (whether or not it exists)."""
    from greenbench.fsutil import config_dir

    return config_dir() / "config.toml"


def read() -> tuple[dict, Path]:
    """The config file's keys (``{}`` when there is none) and its path.

    Raises:
        GreenbenchError: unreadable file, invalid TOML, an unknown key (with "did you mean"), or a value of
            the wrong type.
    """
    p = path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return {}, p
    except OSError as exc:
        raise GreenbenchError(f"cannot read {p}: {exc.strerror or exc}", "fix its permissions or remove it") from None
    try:
        import tomllib
    except ImportError:  # pragma: no cover (Python 3.10)
        import tomli as tomllib
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GreenbenchError(f"{p} is not valid TOML: {exc}", "fix the file (e.g. region = \"FRA\") or remove it") from None
    for key, value in data.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            raise GreenbenchError(
                f"{p}: unknown key {key!r}",
                (f"did you mean {close[0]!r}? " if close else "") + f"known keys: {', '.join(KEYS)}",
            )
        _check(key, value, p)
    return data, p


def _check(key: str, value: Any, p: Path) -> None:
    if key == "pue":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 1.0
    elif key == "region":  # a code, or an intensity in g CO2e/kWh
        ok = (isinstance(value, str) and value.strip() != "") or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0)
    else:
        ok = isinstance(value, str) and value.strip() != ""
    if not ok:
        raise GreenbenchError(f"{p}: {key!r} must be {KEYS[key][0]}, got {value!r}", "fix or remove the key")


def effective() -> list[dict]:
    """Every setting: ``{"key", "value", "origin"}`` (origin: environment variable, config file, default)."""
    from greenbench.fsutil import cache_dir, config_dir, data_dir

    data, p = read()
    out: list[dict] = []

    def add(key: str, env: str | None, default: Any, default_origin: str = "default") -> None:
        if env and os.environ.get(env, "").strip():
            out.append({"key": key, "value": os.environ[env].strip(), "origin": f"environment variable {env}"})
        elif key in data:
            out.append({"key": key, "value": data[key], "origin": f"{p} (key {key!r})"})
        else:
            out.append({"key": key, "value": default, "origin": default_origin})

    add("region", "GREENBENCH_REGION", "WORLD", "default: the world average (results say so; set a region)")
    add("pue", "GREENBENCH_PUE", 1.0)
    add("store", "GREENBENCH_STORE", str(data_dir() / "store"))
    trust_default = config_dir() / "trust.txt"  # greenbench.trust.DEFAULT_FILE
    if "trust" not in data and trust_default.exists():
        out.append({"key": "trust", "value": str(trust_default),
                    "origin": "the default trust file (greenbench keys trust add|rm)"})
    else:
        add("trust", None, None, "default: only the local signing key is trusted")
    out.append({"key": "config_file", "value": str(p), "origin": "exists" if p.exists() else "does not exist"})
    cfg_env = "GREENBENCH_CONFIG_DIR"
    out.append({"key": "config_dir", "value": str(config_dir()),
                "origin": f"environment variable {cfg_env}" if os.environ.get(cfg_env) else "default (platform)"})
    cache_env = "GREENBENCH_CACHE_DIR"
    out.append({"key": "cache_dir", "value": str(cache_dir()),
                "origin": f"environment variable {cache_env}" if os.environ.get(cache_env) else "default (platform)"})
    from greenbench.meters.rapl import DEFAULT_ROOT, ROOT_ENV

    out.append({"key": "powercap_dir", "value": os.environ.get(ROOT_ENV) or DEFAULT_ROOT,
                "origin": f"environment variable {ROOT_ENV}" if os.environ.get(ROOT_ENV) else "default"})
    return out
