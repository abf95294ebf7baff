"""CLI commands that answer questions from the store: recipients, recipient, subject, drift,
and the documents (RoPA, notice, data map, report). Merged into the root command by :mod:`.app`; each opens the store, calls one library function and prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from registry.exceptions import InputError

from .options import (
    AsOfOpt,
    Globals,
    JsonOpt,
    OutOpt,
    SinceOpt,
    UntilOpt,
    as_of_bound,
    command,
    emit,
    read_db,
    out,
    print_table,
    write_out,
)

__all__ = ["app"]

app = typer.Typer()


@app.command()
@command
def recipients(
    category: Annotated[str, typer.Option("--category", help="Data category key; covers every key under it.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    include_subprocessors: Annotated[bool, typer.Option("--include-subprocessors", help="Add sub-processors, inheriting via their processor.")] = False,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who received this category (or anything under it) in the window."""
    from registry.answers import questions
    from registry.model.times import parse_bound

    rows = questions.recipients_of(read_db(), category, parse_bound(since, "--since"), parse_bound(until, "--until"), include_subprocessors,
                                   as_of_bound(as_of))
    emit(rows, as_json, lambda r: print_table(r, ["recipient", "via", "service", "country", "declared", "categories", "events", "last_seen"]))


@app.command()
@command
def recipient(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Recipient key.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What one recipient received: per source, category, purpose and legal basis."""
    from registry.answers import questions
    from registry.model.times import parse_bound

    detail = questions.recipient_detail(read_db(), key, parse_bound(since, "--since"), parse_bound(until, "--until"), as_of_bound(as_of))

    def render(d: questions.RecipientDetail) -> None:
        out.print(f"[bold]{d.name}[/] ({d.recipient}) {d.service or ''} {d.role or ''} {d.country or ''}"
                  + ("" if d.declared else " [red]undeclared[/]"))
        print_table(d.flows, ["source", "category", "purpose", "legal_basis", "events", "records", "first_seen", "last_seen"])

    emit(detail, as_json, render)


@app.command()
@command
def subject(ref: Annotated[str, typer.Argument(metavar="REF", help="Subject ref (see subject-ref).")], as_of: AsOfOpt = None,
            as_json: JsonOpt = False) -> None:
    """Everything about one data subject: recipients, who to notify of an erasure."""
    from registry.answers import questions

    answer = questions.subject(read_db(), ref, as_of_bound(as_of))

    def render(a: questions.SubjectAnswer) -> None:
        print_table(a.transfers, ["recipient", "source", "categories", "purposes", "events", "first_seen", "last_seen"], "transfers")
        print_table(a.disclosures, ["request_id", "authority", "instrument", "outcome", "notice", "disclosed_at"], "disclosures")
        out.print("notify on erasure: " + ", ".join(a.notify_on_erasure))

    emit(answer, as_json, render)


@app.command()
@command
def drift(
    since: SinceOpt = None,
    until: UntilOpt = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 1 when there is any drift.")] = False,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Observed flows nobody declared, declarations nothing confirms, transfers without a safeguard."""
    from registry.answers import drift as drift_mod
    from registry.model.times import parse_bound

    rows = drift_mod.drift(read_db(), parse_bound(since, "--since"), parse_bound(until, "--until"), as_of_bound(as_of))
    emit(rows, as_json, lambda r: print_table(r, ["kind", "source", "recipient", "category", "purpose", "activity", "events", "detail"]))
    if fail_on_drift and rows:
        raise typer.Exit(1)


@app.command()
@command
def ropa(
    format_: Annotated[str, typer.Option("--format", help="md | csv | xlsx | json | html")] = "md",
    role: Annotated[str, typer.Option("--role", help="controller (Art. 30(1)) | processor (Art. 30(2))")] = "controller",
    out_path: OutOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The Art. 30 record of processing, declarations checked against observed events; it ends
    with the history of manifest versions."""
    from registry import reports

    fmt = "json" if as_json or Globals.json else format_
    if fmt not in reports.FORMATS:
        raise InputError(f"must be one of {', '.join(reports.FORMATS)}", "--format")
    if role not in ("controller", "processor"):
        raise InputError("must be controller or processor", "--role")
    if fmt == "xlsx" and out_path is None and sys.stdout.isatty():
        raise InputError("an XLSX workbook needs --out PATH", "--out")
    write_out(reports.ropa_document(read_db(), fmt, role, as_of_bound(as_of)), out_path, f"the {fmt} record")  # type: ignore[arg-type]


@app.command()
@command
def notice(out_path: OutOpt = None, as_of: AsOfOpt = None) -> None:
    """The privacy notice's recipients and international-transfers sections, in Markdown."""
    from registry import reports

    write_out(reports.notice_document(read_db(), as_of_bound(as_of)), out_path, "the notice sections")


@app.command()
@command
def diagram(
    format_: Annotated[str, typer.Option("--format", help="svg | png | dot")] = "svg",
    out_path: OutOpt = None,
    category: Annotated[Optional[str], typer.Option("--category", help="Only flows of this category (and under it).")] = None,
    recipient_key: Annotated[Optional[str], typer.Option("--recipient", help="Only this recipient and its sub-processors.")] = None,
    as_of: AsOfOpt = None,
) -> None:
    """The data map (Graphviz): services → recipients → sub-processors, drift drawn in red."""
    from registry import reports

    if format_ not in ("svg", "png", "dot"):
        raise InputError("must be svg, png or dot", "--format")
    write_out(reports.datamap_document(read_db(), format_, category, recipient_key, as_of_bound(as_of)), out_path, "the data map")  # type: ignore[arg-type]


@app.command()
@command
def report(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("reports"),
           as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Everything for an audit in one folder: ropa.xlsx/.html/.md/.json, notice.md, datamap.svg, drift.json."""
    from registry import reports

    written = reports.write_all(read_db(), out_dir, as_of_bound(as_of))
    emit({"out": str(out_dir), "files": written}, as_json, lambda r: out.print(f"wrote {', '.join(r['files'])} to {r['out']}"))
