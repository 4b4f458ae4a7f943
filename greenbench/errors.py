"""The one error root that the CLI catches.

A :class:`GreenbenchError` is a problem with the user's input or environment: the CLI prints its
message and hint and exits with its ``exit_code`` (2 by default, see CONTRACT.md). Anything else
that escapes is a bug in greenbench and shows its traceback.
"""

from __future__ import annotations


class GreenbenchError(Exception):
    """Bad input or an unusable environment (exit 2).

    Args:
        message: what was wrong and where (file, line, option).
        hint: how to fix it, one sentence; optional.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class ProfileError(GreenbenchError):
    """A profile file is missing, malformed or invalid."""


class MeterError(GreenbenchError):
    """An energy meter that was explicitly requested cannot be used here."""


class BackendError(GreenbenchError):
    """A backend or model cannot be used (unknown backend, no GPU, model greenbench cannot drive)."""


class StoreError(GreenbenchError):
    """The content-addressed store or a CAR/CID input is malformed or unusable."""


class VerificationError(GreenbenchError):
    """A verdict against the input: a signature or a hash did not verify (exit 1)."""

    exit_code = 1
