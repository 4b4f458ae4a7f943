"""`greenbench keys`: the Ed25519 signing key and its did:key signer id.

``keys init`` creates the key (0600, in the user config dir) if absent and prints the signer id;
``keys show`` prints the id of the existing key. Stdout carries only the did:key (or JSON with
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


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group (``init``, ``show``) to the root app."""
    app.add_typer(keys_app, name="keys")
