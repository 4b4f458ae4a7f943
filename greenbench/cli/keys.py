"""`greenbench keys`: the Ed25519 signing key and its did:key signer id.

``keys init`` creates the key (0600, in the user config dir) if absent and prints the signer id;
``keys show`` prints the id of the existing key; ``keys trust add|rm|ls DID`` edit and list the
trust file (:mod:`greenbench.trust`). Stdout carries only the did:key (or JSON with
``--json``), so scripts can capture it; where the key lives goes to stderr. The private key is never
printed.
"""

from __future__ import annotations

import typer


keys_app = typer.Typer(help="The signing key (Ed25519) and its signer id (did:key).", no_args_is_help=True)


def _emit(did: str, path, created: bool | None, as_json: bool) -> None:
    from greenbench.cli import render

    if as_json:
        from greenbench.canonical import canonical_bytes

        doc = {"did": did, "path": str(path)}
        if created is not None:
            doc["created"] = created
        render.print_json_bytes(canonical_bytes(doc))
        return
    if created is True:
        render.info(f"created signing key {path}")
    elif created is False:
        render.info(f"signing key already exists: {path}")
    else:
        render.info(f"signing key: {path}")
    typer.echo(did)


@keys_app.command("init")
def init(
    as_json: bool = typer.Option(False, "--json", help="Print {did, path, created} as JSON."),
) -> None:
    """Create the signing key if absent (idempotent) and print the signer id (did:key:z6Mk…)."""
    from greenbench import signing

    key, path, created = signing.init_key()
    _emit(signing.did_key(key), path, created, as_json)


@keys_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Print {did, path} as JSON."),
) -> None:
    """Print the signer id (did:key) of the existing signing key."""
    from greenbench import signing

    key = signing.load_key()
    _emit(signing.did_key(key), signing.key_dir() / signing.KEY_FILE, None, as_json)


trust_app = typer.Typer(
    help="The trust file: whose signed results the leaderboard ranks (and verify and serve accept).",
    no_args_is_help=True,
)
keys_app.add_typer(trust_app, name="trust")


@trust_app.command("add")
def trust_add(did: str = typer.Argument(..., help="A signer id (did:key:z6Mk…) to trust.")) -> None:
    """Trust a signer: add its did:key to the trust file (created with the local key first)."""
    from greenbench import trust
    from greenbench.cli import render

    path, added, created = trust.add(did)
    if created:
        render.info(f"created the trust file {path}")
    render.info(f"{'now trusting' if added else 'already trusted:'} {did} ({path})")


@trust_app.command("rm")
def trust_rm(did: str = typer.Argument(..., help="A trusted signer id (did:key:z6Mk…).")) -> None:
    """Stop trusting a signer: remove its did:key from the trust file."""
    from greenbench import trust
    from greenbench.cli import render

    path = trust.remove(did)
    render.info(f"no longer trusting {did} ({path})")


@trust_app.command("ls")
def trust_ls(as_json: bool = typer.Option(False, "--json", help="Print {keys, source, path} as JSON.")) -> None:
    """List the trusted signers (one did:key per line) and say where the list comes from."""
    from greenbench import trust
    from greenbench.cli import render

    effective = trust.resolve()
    if as_json:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(effective.to_json()))
        return
    render.info(f"trusted: {effective.source}")
    path, keys, _ = trust.listed() if effective.from_file else (None, sorted(effective.keys), False)
    for did in keys:
        typer.echo(did)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group (``init``, ``show``, ``trust add|rm|ls``) to the root app."""
    app.add_typer(keys_app, name="keys")
