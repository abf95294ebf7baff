"""CLI commands of the disclosure ledger: log, list, report (``head`` and ``verify`` live in
:mod:`.ledger`). Merged into the root command by :mod:`.app`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from registry.exceptions import InputError

from .options import Globals, JsonOpt, command, emit, err, open_db, read_db, out, print_table

__all__ = ["app", "group"]

app = typer.Typer()
group = typer.Typer(no_args_is_help=True, help="The legal team's ledger of disclosures to authorities.")
app.add_typer(group, name="disclosures")


@group.command("log")
@command
def disclosures_log(file: Annotated[str, typer.Argument(help="One request's snapshot, YAML or JSON, or - for stdin.")],
                    as_json: JsonOpt = False) -> None:
    """Append a snapshot of a request (subpoena, court order, warrant...) to the ledger."""
    from registry.ledger import disclosures

    if file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file) from None
    result = disclosures.log_disclosure(open_db(), text)
    emit(result, as_json, lambda r: out.print(f"Logged {r.request_id} version {r.version} (hash {r.hash[:16]}…)"))


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)


@group.command("list")
@command
def disclosures_list(
    open_: Annotated[bool, typer.Option("--open", help="Only requests still pending.")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only delayed notices past their due date.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Current state of each request; Art. 48 warnings go to stderr."""
    from registry.ledger import disclosures

    rows, warnings = disclosures.list_disclosures(read_db(), open_, overdue)
    emit(rows, as_json, lambda r: print_table(r, ["request_id", "authority", "authority_country", "instrument", "received_at",
                                             "outcome", "notice", "notice_due", "versions"]))
    _warn(warnings)


@group.command("report")
@command
def disclosures_report(
    year: Annotated[int, typer.Option("--year", help="Requests received in this year.")],
    format_: Annotated[str, typer.Option("--format", help="md | json")] = "md",
    as_json: JsonOpt = False,
) -> None:
    """The yearly transparency report: requests by instrument, outcome, country; notice; subjects."""
    from registry.model import declarations
    from registry.reports import transparency

    if format_ not in ("md", "json"):
        raise InputError("must be md or json", "--format")
    engine = read_db()
    report, warnings = transparency.transparency_report(engine, year)
    if format_ == "json" or as_json or Globals.json:
        emit(report, True)
    else:
        manifest = declarations.current_manifest(engine)
        sys.stdout.write(transparency.to_markdown(report, warnings, manifest.controller.name if manifest else None))
    _warn(warnings)
