"""CLI commands of the signed ledger: ``disclosures head``, ``disclosures verify``, ``ledger-key
create``. Merged into the root command by :mod:`.app`; each is a thin wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from registry.exceptions import LedgerError

from .disclosures import group as disclosures_app
from .options import JsonOpt, command, emit, err, read_db, out

__all__ = ["app"]

app = typer.Typer()

ledger_key_app = typer.Typer(no_args_is_help=True, help="The Ed25519 key that signs the disclosure ledger.")
app.add_typer(ledger_key_app, name="ledger-key")


@disclosures_app.command("head")
@command
def disclosures_head(as_json: JsonOpt = False) -> None:
    """The newest entry's hash and the entry count, signed: save it (or let REGISTRY_LEDGER_ANCHOR_FILE
    keep every head) and `verify --anchor` finds a deleted tail."""
    from registry.ledger import chain as ledger

    try:
        result = ledger.head(read_db())
    except LedgerError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    emit(result, True)
    if result.signature is None:
        err.print("warning: unsigned head: REGISTRY_LEDGER_KEY is not set", markup=False, highlight=False)


@disclosures_app.command("verify")
@command
def disclosures_verify(
    anchor: Annotated[Optional[Path], typer.Option("--anchor", help="A saved `disclosures head` (or heads, one a line).")] = None,
    public_key: Annotated[Optional[Path], typer.Option(
        "--public-key", help="The ledger's public key (PEM, or the base64 of a head): verify without the private key.")] = None,
    legacy_unsigned: Annotated[Optional[int], typer.Option(
        "--legacy-unsigned", min=0, help="How many first entries were logged before signing began (from a head saved then; "
        "default REGISTRY_LEDGER_LEGACY_UNSIGNED, else 0). With a key, any other unsigned entry fails.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain, check every signature and the anchors; exit 1 naming the first
    entry that does not fit."""
    from registry.ledger import chain as ledger

    result = ledger.verify(read_db(), str(anchor) if anchor else None, str(public_key) if public_key else None,
                           legacy=legacy_unsigned)
    emit(result, as_json, lambda r: out.print(f"ledger ok: {r.reason}" if r.ok else f"[red]ledger broken[/]: {r.reason}",
                                              markup=not r.ok, highlight=False))
    if not result.ok:
        raise typer.Exit(1)


@ledger_key_app.command("create")
@command
def ledger_key_create(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM, mode 0600; never overwritten).")],
    public_out: Annotated[Optional[Path], typer.Option("--public-out", help="Also write the public key (PEM) here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the ledger's signing key; prints the public key (PEM) for auditors."""
    from registry.ledger.keys import create_key

    emit(create_key(out_path, public_out), as_json, lambda k: out.print(k.public_key_pem, end="", markup=False, highlight=False))
