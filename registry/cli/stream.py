"""CLI commands of the event stream: publish, consume, status, and the dead letters. Merged into the root command by :mod:`.app`."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from registry.exceptions import InputError
from registry.stream.kafka import Topics

from .options import (
    JsonOpt,
    command,
    emit,
    open_db,
    read_db,
    open_lines,
    out,
    print_counts,
    print_table,
)

BootstrapOpt = Annotated[Optional[str], typer.Option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                                    help="Kafka bootstrap servers (default localhost:9092).")]
TransfersOpt = Annotated[str, typer.Option("--transfers-topic", help="Topic of transfer events.")]
DisclosuresOpt = Annotated[str, typer.Option("--disclosures-topic", help="Topic of disclosure events.")]
DeadTopicOpt = Annotated[str, typer.Option("--dead-letter-topic", help="Topic refused records are forwarded to.")]
PartitionsOpt = Annotated[int, typer.Option("--partitions", min=1, help="Partitions of topics this creates.")]

__all__ = ["app"]

app = typer.Typer()
dead_app = typer.Typer(no_args_is_help=True, help="Events that were refused, with their reason; replay them.")
app.add_typer(dead_app, name="dead-letters")


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
    from registry.stream.kafka import Topics, send_lines
    from registry.stream.kafka import bootstrap_servers as kafka_bootstrap

    if mode not in ("structured", "binary"):
        raise InputError("must be structured or binary", "--mode")
    topics = Topics(transfers_topic, disclosures_topic, dead_letter_topic)
    count = send_lines(open_lines(file), bootstrap=kafka_bootstrap(bootstrap_servers), topics=topics,
                       mode=mode, partitions=partitions)  # type: ignore[arg-type]
    emit({"published": count}, as_json, lambda r: out.print(f"Published {r['published']} events"))


@app.command()
@command
def consume(
    group: Annotated[str, typer.Option(help="Consumer group.")] = "dataflow-registry",
    stop_when_idle: Annotated[Optional[float], typer.Option(help="Exit after this many seconds without events.")] = None,
    max_events: Annotated[Optional[int], typer.Option(min=1, help="Exit after this many events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction at most.")] = 2000,
    session_timeout_ms: Annotated[int, typer.Option(help="Consumer-group session timeout (a killed member holds its partitions this long).")] = 6000,
    heartbeat_interval_ms: Annotated[int, typer.Option(help="Consumer-group heartbeat interval.")] = 2000,
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
    from registry.stream.kafka import Topics

    config = WorkerConfig(bootstrap=bootstrap_servers, group=group, topics=Topics(transfers_topic, disclosures_topic, dead_letter_topic),
                          partitions=partitions, batch_size=batch_size, stop_when_idle=stop_when_idle, max_events=max_events,
                          session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
                          outage_timeout=outage_timeout, metrics_port=metrics_port)
    from registry.stream.held import asked, hold_signals

    hold_signals()
    worker = Worker(open_db(), config)
    worker.report = lambda totals: emit(totals, as_json, lambda r: print_counts("consume", r))
    if asked():
        worker.stop()
    totals = worker.run()
    emit(totals, as_json, lambda r: print_counts("consume", r))
    if worker.exit_code:
        raise typer.Exit(worker.exit_code)


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
    from registry.stream import jsonlog
    from registry.stream.kafka import Topics
    from registry.stream.status import group_status

    jsonlog.setup()  # warnings (broker unreachable, offsets ahead of the log) as JSON lines on stderr
    result = group_status(read_db(), group, Topics(transfers_topic, disclosures_topic), bootstrap_servers)

    def render(r: Any) -> None:
        print_table(r.partitions, ["topic", "partition", "stored_offset", "end_offset", "lag"], f"group {r.group}")
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
    from registry.answers.strict import check_reason
    from registry.intake import deadletters

    check_reason(reason, "--reason")
    rows = deadletters.list_dead_letters(read_db(), reason, include_replayed=all_)

    def render(items: list[deadletters.DeadLetterView]) -> None:
        table = Table("id", "reason", "detail", "origin", "received")
        for r in items:
            table.add_row(str(r.id), r.reason, r.detail[:80], r.origin(), r.received_at)
        out.print(table)

    emit(rows, as_json, render)


@dead_app.command("replay")
@command
def dead_replay(as_json: JsonOpt = False) -> None:
    """Re-validate dead letters against the current manifest; ingest those that now pass."""
    from registry.intake import deadletters

    emit(deadletters.replay(open_db()), as_json, lambda r: print_counts("replay", r))
