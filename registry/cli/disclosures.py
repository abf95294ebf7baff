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
    open_: Annotated[bool, typer.Option("--open", help="Only requests still to answer (pending, nothing disclosed).")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only delayed notices past their due date and missed e-Evidence clocks.")] = False,
    due_within: Annotated[float | None, typer.Option("--due-within", help="Only open requests due within H hours (overdue included).",
                                                     metavar="H")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Current state of each request with its due time; warnings (Art. 48, deadlines) go to stderr."""
    from registry.ledger import disclosures

    if due_within is not None and not 0 <= due_within <= 24 * 366 * 100:
        raise InputError(f"a number of hours from 0 to {24 * 366 * 100} (100 years): {due_within:g}", "--due-within")
    rows, warnings = disclosures.list_disclosures(read_db(), open_, overdue, due_within=due_within)
    emit(rows, as_json, lambda r: print_table(r, ["request_id", "authority", "authority_country", "instrument", "emergency",
                                             "received_at", "due_at", "outcome", "notice", "notice_due", "versions"]))
    _warn(warnings)


@group.command("report")
@command
def disclosures_report(
    year: Annotated[int, typer.Option("--year", help="Requests received in this year (UTC).")],
    half: Annotated[int | None, typer.Option("--half", help="1 (January–June) or 2 (July–December).")] = None,
    format_: Annotated[str, typer.Option("--format", help="md | json | csv (a Frictionless data package; needs --out)")] = "md",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder to write into (the data package, or report.md/json).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The transparency report for a year or half-year: requests by legal process received and
    disclosed, outcome, country, notice, subjects, emergencies, median days to disclose."""
    from registry.model import declarations
    from registry.reports import datapackage, transparency

    if format_ not in ("md", "json", "csv"):
        raise InputError("must be md, json or csv", "--format")
    if format_ == "csv" and out_dir is None:
        raise InputError("a data package is a folder of files: give --out DIR", "--out")
    engine = read_db()
    report, warnings = transparency.transparency_report(engine, year, half)
    manifest = declarations.current_manifest(engine)
    controller = manifest.controller.name if manifest else None
    name = f"transparency-report-{transparency.period_label(year, half).lower()}"
    try:
        if format_ == "csv":
            assert out_dir is not None
            datapackage.write_package(out_dir, datapackage.package_for(engine, year, half)[1])
        elif out_dir is not None:
            body = report.model_dump_json(indent=2) + "\n" if format_ == "json" else transparency.to_markdown(report, warnings, controller)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{name}.{format_}").write_text(body, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", str(out_dir)) from None
    if format_ == "json" or as_json or Globals.json:
        emit(report, True)
    elif format_ == "md" and out_dir is None:
        sys.stdout.write(transparency.to_markdown(report, warnings, controller))
    elif not (as_json or Globals.json):
        err.print(f"wrote {out_dir}", markup=False, highlight=False)
    _warn(warnings)
