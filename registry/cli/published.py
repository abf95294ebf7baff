"""``subprocessors``: the declared sub-processor chains (without a subcommand, as in v2), the
published recipients list and its change notices (contract §8). Merged into the root command by
:mod:`.app`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import AsOfOpt, Globals, JsonOpt, as_of_bound, bound, command, emit, print_table, read_db, write_out

__all__ = ["app"]

app = typer.Typer()
subprocessors_app = typer.Typer(help="Sub-processor chains; the published recipients list and its change notices.")
app.add_typer(subprocessors_app, name="subprocessors")


@subprocessors_app.callback(invoke_without_command=True)
@command
def subprocessors(ctx: typer.Context, as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Declared sub-processor chains, from the controller side (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        # options given before a subcommand belong to the chains answer: silently dropping them
        # would answer a different question than the one asked
        given = [name for name, value in (("--as-of", as_of), ("--json", as_json)) if value]
        if given:
            from registry.exceptions import InputError

            raise InputError(f"give it after the subcommand: registry subprocessors {ctx.invoked_subcommand} {given[0]} ...",
                             given[0])
        return
    from registry.answers import questions

    emit(questions.subprocessor_chains(read_db(), as_of_bound(as_of)), as_json,
         lambda r: print_table(r, ["recipient", "processor_of", "chain", "country"]))


@subprocessors_app.command("list")
@command
def list_(
    format_: Annotated[Optional[str], typer.Option("--format", help="json | md | csv | html (default: a table, or json with --json)")] = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The published recipients list: in force or announced, location, safeguard, data, first/last seen."""
    from registry.reports import published

    if format_ is None and not (as_json or Globals.json):
        from registry.answers.notices import published_list

        print_table(published_list(read_db(), as_of_bound(as_of)),
                    ["recipient", "role", "country", "transfer_mechanism", "in_force_since", "status", "first_seen", "last_seen"])
        return
    fmt = "json" if as_json or Globals.json else format_ or "json"
    write_out(published.list_document(read_db(), fmt, as_of_bound(as_of)), None, "the list")


@subprocessors_app.command("changes")
@command
def changes(
    since: Annotated[Optional[str], typer.Option("--since", help="Announced at or after T (RFC 3339 or YYYY-MM-DD).")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", help="json | atom (default: a table, or json with --json)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change notices (added, removed, changed) with announced, in force and objection deadline."""
    from registry.reports import published

    if format_ is None and not (as_json or Globals.json):
        from registry.answers.notices import changes as rows

        emit(rows(read_db(), bound(since, "--since")), False,
             lambda r: print_table(r, ["recipient", "change", "announced_at", "effective_from", "objection_deadline", "short_notice"]))
        return
    fmt = "json" if as_json or Globals.json else format_ or "json"
    write_out(published.changes_document(read_db(), fmt, bound(since, "--since")), None, "the changes")
