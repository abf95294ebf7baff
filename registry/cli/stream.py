"""CLI commands of the event stream: publish, consume, status, and the dead letters. Merged into the root command by :mod:`.root`; ``consume``'s options and body are in :mod:`.consume`."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeAlias

import typer
from rich.table import Table

from registry.exceptions import InputError
from registry.stream.kafka import Topics

from .consume import BOOTSTRAP, DEAD_LETTERS, DISCLOSURES, HELP, OPTIONS, PARTITIONS, TRANSFERS, Opt, run
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


def _option(option: Opt) -> Any:
    """``Annotated[type, typer.Option(...)]`` of a consume option (:mod:`.consume` holds them as data)."""
    kind = option.kind if option.default is not None else Optional[option.kind]
    return Annotated[kind, typer.Option(option.flag, envvar=option.envvar, min=option.minimum, help=option.help)]  # type: ignore[valid-type]


if TYPE_CHECKING:
    BootstrapOpt: TypeAlias = Optional[str]
    TransfersOpt: TypeAlias = str
    DisclosuresOpt: TypeAlias = str
    DeadTopicOpt: TypeAlias = str
    PartitionsOpt: TypeAlias = int
else:  # the options publish and status share with consume
    BootstrapOpt, TransfersOpt, DisclosuresOpt, DeadTopicOpt, PartitionsOpt = map(
        _option, (BOOTSTRAP, TRANSFERS, DISCLOSURES, DEAD_LETTERS, PARTITIONS))

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


def consume(**values: Any) -> None:
    code = run(values)
    if code:
        raise typer.Exit(code)


# built from the table :mod:`.consume` reads plain command lines with, so that the two agree
consume.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=_option(o)) for o in OPTIONS])
app.command("consume", help=HELP)(consume)


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
