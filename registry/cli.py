"""The ``registry`` command: each command opens the store, calls one library function and prints
the result (a rich table, or only JSON with ``--json``). Library errors become exit 2 with one
line on stderr; findings asked to fail become exit 1."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional, Sequence, TypeVar

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from . import declarations, deadletters, disclosures, ledger, questions
from . import reports
from .reports import transparency
from . import drift as drift_mod
from . import ingest as ingest_mod
from .events import parse_bound
from .exceptions import InputError, RegistryError
from .kafka import Topics, send_lines
from .kafka import bootstrap_servers as kafka_bootstrap
from .manifest import load_manifest
from .store import database_url, open_store
from .subjects import subject_ref as make_subject_ref

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Registry of who receives which personal data.")
dead_app = typer.Typer(no_args_is_help=True, help="Events that were refused, with their reason; replay them.")
app.add_typer(dead_app, name="dead-letters")
disclosures_app = typer.Typer(no_args_is_help=True, help="The legal team's ledger of disclosures to authorities.")
app.add_typer(disclosures_app, name="disclosures")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line
F = TypeVar("F", bound=Callable[..., Any])


class _Globals:
    db: Optional[str] = None
    json: bool = False


JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]


@app.callback()
def _global(
    db: Annotated[Optional[str], typer.Option("--db", envvar="REGISTRY_DATABASE_URL", help="Database URL (default sqlite:///registry.db).")] = None,
    as_json: JsonOpt = False,
) -> None:
    _Globals.db, _Globals.json = db, as_json


def command(fn: F) -> F:
    """Map library errors to the contract's exit codes, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except RegistryError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except SQLAlchemyError as exc:
            # e.g. a store written by another version of the schema: say so in one line
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            err.print(f"error: the store at {_Globals.db or database_url()} failed: {reason}", markup=False, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _store() -> Any:
    return open_store(_Globals.db)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def emit(value: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json or _Globals.json or render is None:
        sys.stdout.write(orjson.dumps(_jsonable(value), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(value)


def _counts_table(title: str, value: BaseModel) -> None:
    table = Table(title=title, show_header=False)
    for key, number in value.model_dump().items():
        table.add_row(key, str(number))
    out.print(table)


def _open_lines(path: str) -> Iterable[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


@app.command()
@command
def declare(file: Annotated[Path, typer.Argument(help="Manifest (YAML or JSON).")],
            effective_from: Annotated[Optional[str], typer.Option(
                "--effective-from", help="When it takes effect (RFC 3339 or YYYY-MM-DD; default now; earlier for a change made on paper before).")] = None,
            as_json: JsonOpt = False) -> None:
    """Store a new version of the manifest (declarations). Invalid manifests store nothing."""
    manifest = load_manifest(file)
    result = declarations.declare(_store(), manifest, parse_bound(effective_from, "--effective-from"))
    emit(result, as_json, lambda r: out.print(
        f"Declared [bold]{r.controller}[/]: {r.recipients} recipients, {r.activities} activities (version {r.version})"))


@app.command()
@command
def ingest(
    file: Annotated[str, typer.Argument(help="JSON Lines of structured CloudEvents, or - for stdin.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 5000,
    as_json: JsonOpt = False,
) -> None:
    """Record events from a file: valid ones once each, invalid ones as dead letters."""
    ingestor = ingest_mod.Ingestor(_store())
    records = ingest_mod.lines_of(_open_lines(file), origin=None if file == "-" else file)
    if out.is_terminal and not (as_json or _Globals.json) and file != "-":
        from rich.progress import Progress

        with Progress(console=out, transient=True) as progress:
            size = Path(file).stat().st_size
            task = progress.add_task("ingesting", total=size)
            counted = _count_bytes(records, lambda n: progress.advance(task, n))
            result = ingestor.ingest(counted, batch_size)
    else:
        result = ingestor.ingest(records, batch_size)
    emit(result, as_json, lambda r: _counts_table("ingest", r))


def _count_bytes(records: Iterable[ingest_mod.RawRecord], advance: Callable[[int], None]) -> Iterable[ingest_mod.RawRecord]:
    for record in records:
        advance(len(record.value) + 1)
        yield record


@app.command("subject-ref")
@command
def subject_ref(stable_id: Annotated[str, typer.Argument(metavar="ID", help="The stable subject id (hashed, never stored).")],
                as_json: JsonOpt = False) -> None:
    """Print the subject ref of an id: HMAC-SHA256 keyed with REGISTRY_SUBJECT_KEY."""
    emit(make_subject_ref(stable_id), True)


SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Window start, inclusive (RFC 3339 or YYYY-MM-DD).")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="Window end, exclusive (RFC 3339 or YYYY-MM-DD).")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Answer as it stood then: the manifest in force at T, events before T.")]


def _as_of(text: str | None) -> Any:
    return parse_bound(text, "--as-of")


def _table(rows: Sequence[BaseModel], columns: list[str], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        values = row.model_dump()
        table.add_row(*(", ".join(v) if isinstance(v, list) else ("" if v is None else str(v)) for v in (values[c] for c in columns)))
    out.print(table)


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
    rows = questions.recipients_of(_store(), category, parse_bound(since, "--since"), parse_bound(until, "--until"), include_subprocessors,
                                   _as_of(as_of))
    emit(rows, as_json, lambda r: _table(r, ["recipient", "via", "service", "country", "declared", "categories", "events", "last_seen"]))


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
    detail = questions.recipient_detail(_store(), key, parse_bound(since, "--since"), parse_bound(until, "--until"), _as_of(as_of))

    def render(d: questions.RecipientDetail) -> None:
        out.print(f"[bold]{d.name}[/] ({d.recipient}) {d.service or ''} {d.role or ''} {d.country or ''}"
                  + ("" if d.declared else " [red]undeclared[/]"))
        _table(d.flows, ["source", "category", "purpose", "legal_basis", "events", "records", "first_seen", "last_seen"])

    emit(detail, as_json, render)


@app.command()
@command
def subject(ref: Annotated[str, typer.Argument(metavar="REF", help="Subject ref (see subject-ref).")], as_of: AsOfOpt = None,
            as_json: JsonOpt = False) -> None:
    """Everything about one data subject: recipients, disclosures, who to notify of an erasure."""
    answer = questions.subject(_store(), ref, _as_of(as_of))

    def render(a: questions.SubjectAnswer) -> None:
        _table(a.transfers, ["recipient", "source", "categories", "purposes", "events", "first_seen", "last_seen"], "transfers")
        _table(a.disclosures, ["request_id", "authority", "instrument", "outcome", "notice", "disclosed_at"], "disclosures")
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
    rows = drift_mod.drift(_store(), parse_bound(since, "--since"), parse_bound(until, "--until"), _as_of(as_of))
    emit(rows, as_json, lambda r: _table(r, ["kind", "source", "recipient", "category", "purpose", "activity", "events", "detail"]))
    if fail_on_drift and rows:
        raise typer.Exit(1)


@app.command()
@command
def subprocessors(as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Declared sub-processor chains, from the controller side."""
    emit(questions.subprocessor_chains(_store(), _as_of(as_of)), as_json, lambda r: _table(r, ["recipient", "processor_of", "chain", "country"]))


OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")]


def _write(data: bytes | str, out_path: Path | None, what: str) -> None:
    payload = data.encode() if isinstance(data, str) else data
    if out_path is None:
        sys.stdout.buffer.write(payload)
        return
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(payload)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", str(out_path)) from None
    err.print(f"wrote {what} to {out_path}", markup=False, highlight=False)


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
    fmt = "json" if as_json or _Globals.json else format_
    if fmt not in reports.FORMATS:
        raise InputError(f"must be one of {', '.join(reports.FORMATS)}", "--format")
    if role not in ("controller", "processor"):
        raise InputError("must be controller or processor", "--role")
    if fmt == "xlsx" and out_path is None and sys.stdout.isatty():
        raise InputError("an XLSX workbook needs --out PATH", "--out")
    _write(reports.ropa_document(_store(), fmt, role, _as_of(as_of)), out_path, f"the {fmt} record")  # type: ignore[arg-type]


@app.command()
@command
def notice(out_path: OutOpt = None, as_of: AsOfOpt = None) -> None:
    """The privacy notice's recipients and international-transfers sections, in Markdown."""
    _write(reports.notice_document(_store(), _as_of(as_of)), out_path, "the notice sections")


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
    if format_ not in ("svg", "png", "dot"):
        raise InputError("must be svg, png or dot", "--format")
    _write(reports.datamap_document(_store(), format_, category, recipient_key, _as_of(as_of)), out_path, "the data map")  # type: ignore[arg-type]


@app.command()
@command
def report(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("reports"),
           as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Everything for an audit in one folder: ropa.xlsx/.html/.md/.json, notice.md, datamap.svg, drift.json."""
    written = reports.write_all(_store(), out_dir, _as_of(as_of))
    emit({"out": str(out_dir), "files": written}, as_json, lambda r: out.print(f"wrote {', '.join(r['files'])} to {r['out']}"))


BootstrapOpt = Annotated[Optional[str], typer.Option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                                    help="Kafka bootstrap servers (default localhost:9092).")]
TransfersOpt = Annotated[str, typer.Option("--transfers-topic", help="Topic of transfer events.")]
DisclosuresOpt = Annotated[str, typer.Option("--disclosures-topic", help="Topic of disclosure events.")]
DeadTopicOpt = Annotated[str, typer.Option("--dead-letter-topic", help="Topic refused records are forwarded to.")]
PartitionsOpt = Annotated[int, typer.Option("--partitions", min=1, help="Partitions of topics this creates.")]


@app.command()
@command
def publish(
    file: Annotated[str, typer.Argument(help="JSON Lines of structured CloudEvents, or - for stdin.")],
    mode: Annotated[str, typer.Option(help="structured | binary (CloudEvents Kafka binding).")] = "structured",
    bootstrap_servers: BootstrapOpt = None,
    transfers_topic: TransfersOpt = Topics.transfers,
    disclosures_topic: DisclosuresOpt = Topics.disclosures,
    dead_letter_topic: DeadTopicOpt = Topics.dead_letter,
    partitions: PartitionsOpt = 3,
    as_json: JsonOpt = False,
) -> None:
    """Send events to Kafka as they are (the consumer validates them), creating missing topics."""
    if mode not in ("structured", "binary"):
        raise InputError("must be structured or binary", "--mode")
    topics = Topics(transfers_topic, disclosures_topic, dead_letter_topic)
    count = send_lines(_open_lines(file), bootstrap=kafka_bootstrap(bootstrap_servers), topics=topics,
                       mode=mode, partitions=partitions)  # type: ignore[arg-type]
    emit({"published": count}, as_json, lambda r: out.print(f"Published {r['published']} events"))


@app.command()
@command
def consume(
    group: Annotated[str, typer.Option(help="Consumer group.")] = "dataflow-registry",
    stop_when_idle: Annotated[Optional[float], typer.Option(help="Exit after this many seconds without events.")] = None,
    max_events: Annotated[Optional[int], typer.Option(min=1, help="Exit after this many events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction at most.")] = 2000,
    session_timeout_ms: Annotated[int, typer.Option(help="Consumer-group session timeout.")] = 45000,
    heartbeat_interval_ms: Annotated[int, typer.Option(help="Consumer-group heartbeat interval.")] = 3000,
    bootstrap_servers: BootstrapOpt = None,
    transfers_topic: TransfersOpt = Topics.transfers,
    disclosures_topic: DisclosuresOpt = Topics.disclosures,
    dead_letter_topic: DeadTopicOpt = Topics.dead_letter,
    partitions: PartitionsOpt = 3,
    outage_timeout: Annotated[float, typer.Option(min=0, help="Exit non-zero after the broker or database is unavailable this long (s).")] = 300,
    metrics_port: Annotated[Optional[int], typer.Option(help="Serve Prometheus metrics at http://0.0.0.0:P/metrics.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Consume events from Kafka into the registry until stopped (SIGTERM/SIGINT finish the batch)."""
    from consumers.worker import Worker, WorkerConfig

    config = WorkerConfig(bootstrap=bootstrap_servers, group=group, topics=Topics(transfers_topic, disclosures_topic, dead_letter_topic),
                          partitions=partitions, batch_size=batch_size, stop_when_idle=stop_when_idle, max_events=max_events,
                          session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
                          outage_timeout=outage_timeout, metrics_port=metrics_port)
    totals = Worker(_store(), config).run()
    emit(totals, as_json, lambda r: _counts_table("consume", r))


@app.command()
@command
def status(
    group: Annotated[str, typer.Option(help="Consumer group.")] = "dataflow-registry",
    bootstrap_servers: BootstrapOpt = None,
    transfers_topic: TransfersOpt = Topics.transfers,
    disclosures_topic: DisclosuresOpt = Topics.disclosures,
    as_json: JsonOpt = False,
) -> None:
    """A consumer group's position per partition (stored offset, end offset, lag) and the store's totals."""
    from .status import group_status

    result = group_status(_store(), group, Topics(transfers_topic, disclosures_topic), bootstrap_servers)

    def render(r: Any) -> None:
        _table(r.partitions, ["topic", "partition", "stored_offset", "end_offset", "lag"], f"group {r.group}")
        lag = r.lag if r.lag is not None else "unknown (broker unreachable)"
        out.print(f"lag {lag}; {r.events} events, {r.dead_letters} dead letters, last event {r.last_event_time}, "
                  f"manifest version {r.manifest_version}", markup=False)

    emit(result, as_json, render)


@dead_app.command("list")
@command
def dead_list(
    reason: Annotated[Optional[str], typer.Option(help="Only this reason code.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed rows.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List dead letters with their reason."""
    rows = deadletters.list_dead_letters(_store(), reason, include_replayed=all_)

    def render(items: list[deadletters.DeadLetterView]) -> None:
        table = Table("id", "reason", "detail", "origin", "received")
        for r in items:
            origin = f"{r.topic}[{r.partition}]@{r.offset}" if r.partition is not None else f"{r.topic or 'stdin'} line {r.offset}"
            table.add_row(str(r.id), r.reason, r.detail[:80], origin, r.received_at)
        out.print(table)

    emit(rows, as_json, render)


@dead_app.command("replay")
@command
def dead_replay(as_json: JsonOpt = False) -> None:
    """Re-validate dead letters against the current manifest; ingest those that now pass."""
    emit(deadletters.replay(_store()), as_json, lambda r: _counts_table("replay", r))


@disclosures_app.command("log")
@command
def disclosures_log(file: Annotated[str, typer.Argument(help="One request's snapshot, YAML or JSON, or - for stdin.")],
                    as_json: JsonOpt = False) -> None:
    """Append a snapshot of a request (subpoena, court order, warrant...) to the ledger."""
    if file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file) from None
    result = disclosures.log_disclosure(_store(), text)
    emit(result, as_json, lambda r: out.print(f"Logged {r.request_id} version {r.version} (hash {r.hash[:16]}…)"))


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)


@disclosures_app.command("list")
@command
def disclosures_list(
    open_: Annotated[bool, typer.Option("--open", help="Only requests still pending.")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only delayed notices past their due date.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Current state of each request; Art. 48 warnings go to stderr."""
    rows, warnings = disclosures.list_disclosures(_store(), open_, overdue)
    emit(rows, as_json, lambda r: _table(r, ["request_id", "authority", "authority_country", "instrument", "received_at",
                                             "outcome", "notice", "notice_due", "versions"]))
    _warn(warnings)


@disclosures_app.command("report")
@command
def disclosures_report(
    year: Annotated[int, typer.Option("--year", help="Requests received in this year.")],
    format_: Annotated[str, typer.Option("--format", help="md | json")] = "md",
    as_json: JsonOpt = False,
) -> None:
    """The yearly transparency report: requests by instrument, outcome, country; notice; subjects."""
    if format_ not in ("md", "json"):
        raise InputError("must be md or json", "--format")
    engine = _store()
    report, warnings = transparency.transparency_report(engine, year)
    if format_ == "json" or as_json or _Globals.json:
        emit(report, True)
    else:
        manifest = declarations.current_manifest(engine)
        sys.stdout.write(transparency.to_markdown(report, warnings, manifest.controller.name if manifest else None))
    _warn(warnings)


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
    from .tokens import create_token

    emit(create_token(_store(), role, name), as_json, lambda t: out.print(f"{t.token}\n(role {t.role}, name {t.name}; shown once)"))


@app.command()
@command
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000) -> None:
    """Run the web service: JSON API under /api/, OpenAPI at /openapi.json, pages under /."""
    import uvicorn

    from . import jsonlog
    from .web import create_app

    jsonlog.setup()

    uvicorn.run(create_app(_Globals.db), host=host, port=port, log_level="info")


from . import cli_ledger  # noqa: E402,F401  (registers `disclosures head`, `disclosures verify`, `ledger-key`)
from . import cli_history  # noqa: E402,F401  (registers `manifests`, `manifests diff`)
from . import cli_fides  # noqa: E402,F401  (registers `import fides`, `export fides`)


def main() -> None:
    app()
