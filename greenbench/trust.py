"""The trust policy: whose signatures make a result count as verified.

Terms:
    trust file: one did:key per line; blank lines and ``#`` comments are ignored
        (:func:`greenbench.signing.read_trust_file`).
    default trust file: ``<config dir>/trust.txt``, the file ``greenbench keys trust add|rm`` edits when
        the config file names none (``trust = "/path"`` in config.toml names another, which those commands
        then edit instead). ``keys trust add`` creates it holding the local signing key first, so adding a
        colleague never silently stops trusting oneself.
    effective trust: the first of ``--trust FILE``, the config key ``trust``, the default trust file if it
        exists, else the local signing key alone (the one ``greenbench keys init`` made), else nobody.
        The leaderboard ranks only results a trusted key signed; others appear apart, as "signed by
        unknown keys". A valid signature by an unknown key still verifies: trust is about whose
        measurements you believe, not about whether the bytes are intact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from greenbench.errors import GreenbenchError

__all__ = ["Trust", "DEFAULT_FILE", "resolve", "editable_file", "local_did", "add", "remove", "listed"]

DEFAULT_FILE = "trust.txt"
_HEADER = (
    "# greenbench trust file: one did:key per line; results signed by these keys are ranked.\n"
    "# Edit with `greenbench keys trust add|rm DID`; `greenbench keys trust ls` lists it.\n"
)


@dataclass(frozen=True)
class Trust:
    """An effective trust set and where it came from.

    Attributes:
        keys: the trusted did:keys.
        source: where they came from, in words (``--trust FILE``, ``config trust = FILE``, ...).
        path: the trust file, when one was read.
        from_file: the keys came from a trust file (given, configured or the default one), not from the
            local-key default.
    """

    keys: frozenset[str]
    source: str
    path: Path | None = None
    from_file: bool = False

    def __contains__(self, did: object) -> bool:
        return did in self.keys

    def trusted_signers(self, signers: Iterable[str]) -> list[str]:
        """Those of ``signers`` this policy trusts, in order."""
        return [s for s in signers if s in self.keys]

    def to_json(self) -> dict:
        return {"keys": sorted(self.keys), "source": self.source, "path": None if self.path is None else str(self.path)}


def default_path() -> Path:
    """The default trust file (whether or not it exists)."""
    from greenbench.fsutil import config_dir

    return config_dir() / DEFAULT_FILE


def _configured() -> Path | None:
    from greenbench import config

    data, _ = config.read()
    value = data.get("trust")
    return Path(os.path.expanduser(value)) if value else None


def local_did() -> str | None:
    """The did:key of the local signing key, None when there is none yet (never creates one)."""
    from greenbench import signing

    path = signing.key_dir() / signing.KEY_FILE
    if not path.exists():
        return None
    return signing.did_key(signing.load_key())


def resolve(option: str | os.PathLike | None = None) -> Trust:
    """The effective trust (module docstring).

    Raises:
        GreenbenchError: a named trust file that cannot be read or lists an invalid did:key; a config
            file that is not valid.
    """
    from greenbench.signing import read_trust_file

    if option is not None:
        path = Path(option)
        return Trust(frozenset(read_trust_file(path)), f"--trust {path}", path, True)
    configured = _configured()
    if configured is not None:
        if not configured.exists():
            from greenbench import config

            raise GreenbenchError(
                f"the trust file {configured} named by `trust` in {config.path()} does not exist",
                "create it with `greenbench keys trust add DID`, or remove the key from the config file",
            )
        return Trust(frozenset(read_trust_file(configured, allow_empty=True)), f"config trust = {configured}", configured, True)
    default = default_path()
    if default.exists():
        return Trust(frozenset(read_trust_file(default, allow_empty=True)), f"trust file {default}", default, True)
    did = local_did()
    if did is None:
        return Trust(frozenset(), "nobody yet (no signing key: `greenbench keys init`; no trust file)")
    return Trust(frozenset({did}), "the local signing key only (no trust file)")


def editable_file() -> Path:
    """The trust file ``keys trust add|rm`` edit: the configured one, else the default one."""
    return _configured() or default_path()


def listed() -> tuple[Path, list[str], bool]:
    """``(file, its did:keys in file order, whether it exists)`` of :func:`editable_file`."""
    from greenbench.signing import read_trust_file

    path = editable_file()
    if not path.exists():
        return path, [], False
    keys = read_trust_file(path, allow_empty=True, ordered=True)
    return path, list(keys), True


def _write(path: Path, lines: list[str]) -> None:
    from greenbench.fsutil import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    except OSError as exc:
        raise GreenbenchError(f"cannot write the trust file {path}: {exc.strerror or exc}",
                              "set GREENBENCH_CONFIG_DIR to a directory you can write to, or fix its permissions") from None


def add(did: str) -> tuple[Path, bool, bool]:
    """Trust ``did``: add it to :func:`editable_file` (created with the local key first).

    Returns:
        ``(file, added, created)``: ``added`` is False when it was already listed.

    Raises:
        GreenbenchError: ``did`` is not a usable Ed25519 did:key.
    """
    from greenbench.signing import public_key_from_did

    public_key_from_did(did)
    path, keys, exists = listed()
    if did in keys:
        return path, False, False
    if exists:
        text = path.read_text(encoding="utf-8")
        lines = [text if text.endswith("\n") or not text else text + "\n"]
    else:
        lines = [_HEADER]
        mine = local_did()
        if mine is not None and mine != did:
            lines.append(f"{mine}  # the local signing key\n")
    lines.append(f"{did}\n")
    _write(path, lines)
    return path, True, not exists


def remove(did: str) -> Path:
    """Stop trusting ``did``: remove its lines from :func:`editable_file`.

    Raises:
        GreenbenchError: there is no trust file, or ``did`` is not in it.
    """
    path, keys, exists = listed()
    if not exists or did not in keys:
        where = f"the trust file {path}" if exists else f"any trust file (there is none at {path})"
        raise GreenbenchError(f"{did} is not in {where}", "list the trusted keys with `greenbench keys trust ls`")
    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.split("#", 1)[0].strip() != did]
    _write(path, kept)
    return path
