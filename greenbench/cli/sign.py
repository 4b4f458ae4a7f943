"""`greenbench sign` and `greenbench verify`: DSSE envelopes over in-toto Statements.

``sign RESULT`` wraps a result document in a signed DSSE envelope written atomically beside it
(``<stem>.dsse.json``). ``verify FILE`` exits 0 only if the envelope's signatures and subject digest
check out (and, when a trust file is given or configured, a listed did:key signed it); 1 on any failed check; 2 when
FILE is not JSON or not an envelope.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from greenbench.errors import GreenbenchError


def sign_cmd(
    result: Path = typer.Argument(..., help="A result document (JSON) to sign."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Where to write the envelope (default: <stem>.dsse.json beside RESULT)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print {path, signer, sha256} as JSON."),
) -> None:
    """Sign RESULT with the local key (created if absent) and write its DSSE envelope."""
    from greenbench import signing
    from greenbench.canonical import canonical_bytes
    from greenbench.cli import render
    from greenbench.fsutil import atomic_write_bytes

    doc = signing.load_json_file(result)
    if signing.is_envelope(doc):
        raise GreenbenchError(
            f"{result} is already a DSSE envelope", f"check it with `greenbench verify {result}`"
        )
    if not isinstance(doc, dict):
        raise GreenbenchError(f"{result} is not a result document (a JSON object expected)")
    if not str(doc.get("schema", "")).startswith("greenbench.result/"):
        render.warn(f"{result} has no greenbench result schema field; signing it anyway")
    key, key_path, created = signing.init_key()
    if created:
        render.info(f"created signing key {key_path}")
    envelope = signing.sign_result(doc, key, result.name)
    dest = out if out is not None else signing.envelope_path_for(result)
    atomic_write_bytes(dest, canonical_bytes(envelope) + b"\n")
    did = signing.did_key(key)
    if as_json:
        payload = signing.make_statement(doc, result.name)["subject"][0]["digest"]["sha256"]
        render.print_json_bytes(canonical_bytes({"path": str(dest), "sha256": payload, "signer": did}))
    else:
        typer.echo(str(dest))
        render.info(f"signed by {did}")


def verify_cmd(
    file: Path = typer.Argument(..., help="A DSSE envelope (.dsse.json)."),
    trust: Optional[Path] = typer.Option(
        None, "--trust", help="File of trusted did:keys, one per line (# comments); others fail. "
        "Default: the config file's `trust`, else the trust file of `greenbench keys trust`."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON on stdout."),
) -> None:
    """Verify a signed result: exit 0 if it checks out, 1 if not (or if a trust file does not list its
    signer), 2 if FILE is not an envelope."""
    from greenbench import signing
    from greenbench import trust as trust_policy
    from greenbench.canonical import canonical_bytes
    from greenbench.cli import render
    from greenbench.errors import VerificationError

    policy = trust_policy.resolve(trust)
    enforced = policy.keys if policy.from_file else None
    envelope = signing.load_envelope(file)
    try:
        v = signing.verify_envelope(envelope, enforced)
    except VerificationError as err:
        if as_json:
            render.print_json_bytes(canonical_bytes({"file": str(file), "reason": err.message, "verified": False}))
        hint = err.hint
        if enforced is not None and "trust list" in err.message:
            hint = f"trusted keys come from {policy.source}; add one with `greenbench keys trust add DID`"
        raise VerificationError(f"{file}: {err.message}", hint) from None
    trusted = bool(policy.trusted_signers(v.signers))
    if as_json:
        render.print_json_bytes(
            canonical_bytes(
                {
                    "file": str(file),
                    "sha256": v.sha256,
                    "signer": v.signer,
                    "signers": list(v.signers),
                    "subject": v.subject_name,
                    "trusted": trusted,
                    "trust_source": policy.source,
                    "verified": True,
                }
            )
        )
    else:
        if enforced is not None:
            note = f" (trusted: {policy.source})"
        elif trusted:
            note = " (trusted: the local signing key)"
        else:
            note = " (not a trusted key: the leaderboard lists it apart; `greenbench keys trust add DID` trusts it)"
        typer.echo(f"verified: {file} signed by {v.signer}{note}")
        render.info(f"subject {v.subject_name or '?'} sha256:{v.sha256}")


def register(app: typer.Typer) -> None:
    """Add ``sign`` and ``verify`` to the root app."""
    app.command("sign")(sign_cmd)
    app.command("verify")(verify_cmd)
