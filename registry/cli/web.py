"""CLI commands of the web service: bearer tokens and ``serve``. Merged into the root command by :mod:`.app`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import Globals, JsonOpt, command, emit, existing_db, open_db, out, print_table, read_db

__all__ = ["app"]

app = typer.Typer()
tokens_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of the web service.")
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
@command
def tokens_create(
    role: Annotated[str, typer.Option("--role", help="service | auditor | legal | admin")],
    name: Annotated[Optional[str], typer.Option("--name", help="Who holds it (recorded with disclosures they log).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; it is shown once and stored hashed."""
    from registry.web.tokens import create_token

    emit(create_token(open_db(), role, name), as_json, lambda t: out.print(f"{t.token}\n(role {t.role}, name {t.name}; shown once)"))


@tokens_app.command("list")
@command
def tokens_list(as_json: JsonOpt = False) -> None:
    """Every token: name, role, when created and last used, whether revoked (never the token)."""
    from registry.web.tokens import list_tokens

    emit(list_tokens(read_db()), as_json, lambda rows: print_table(rows, ["name", "role", "created_at", "last_used_at", "revoked"]))


@tokens_app.command("revoke")
@command
def tokens_revoke(name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name (see tokens list).")],
                  as_json: JsonOpt = False) -> None:
    """Revoke the token of this name; its page sessions end at once."""
    from registry.web.tokens import revoke_token

    emit(revoke_token(existing_db(), name), as_json, lambda r: out.print(f"revoked {r.name}; its sessions are ended"))


@app.command()
@command
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000,
          public: Annotated[bool, typer.Option("--public", help="Also publish the recipients list without a token: "
                                               "/public/recipients (.json, .atom).")] = False,
          public_url: Annotated[Optional[str], typer.Option(
              "--public-url", envvar="REGISTRY_PUBLIC_URL",
              help="With --public: the address readers reach this server at (https://example.com), for the feed's self link.")] = None,
          ) -> None:
    """Run the web service: JSON API under /api/, OpenAPI at /openapi.json, pages under /."""
    import uvicorn

    if public_url is not None:
        from urllib.parse import urlsplit

        from registry.exceptions import InputError

        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise InputError("must be an http(s) URL without query or fragment, like https://example.com", "--public-url")

    from registry.stream import jsonlog
    from registry.web import create_app

    jsonlog.setup()

    uvicorn.run(create_app(Globals.db, public=public, public_url=public_url), host=host, port=port, log_level="info")
