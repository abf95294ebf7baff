"""``registry consume``: its options as data, its body, and a reader of its command line that needs
no Typer. The worker's start-up is clocked (issue 20: under 0.5 s of CPU until it subscribes),
and Typer with Click, rich and a pydantic adapter per option costs about a fifth of that.

The Typer command (:mod:`.stream`) is built from ``OPTIONS`` and calls ``run``. ``read`` takes a
command line only when it is certain to read it as Click would: options it knows, each once,
values in their plainest spelling (``--batch-size 500``, ``--stop-when-idle=2.5``). Anything
else (``--help``, an unknown, repeated or misspelt option, a value out of range or spelt another
way) returns None, and the Typer command reads the line: its help and its exit-2 errors are the
only ones users see. A test compares the two readers on generated command lines."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from registry.stream.kafka import Topics

from .common import Globals

__all__ = ["Opt", "OPTIONS", "HELP", "read", "run"]

HELP = "Consume events from Kafka into the registry until stopped (SIGTERM/SIGINT finish the batch)."


@dataclass(frozen=True)
class Opt:
    """One option: ``--name-with-dashes VALUE`` (a flag when ``kind`` is bool)."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: Optional[float] = None
    envvar: Optional[str] = None  # only for a text option without a default: read takes the text as it is
    spelt: Optional[str] = None  # the flag, where it is not the name with dashes

    @property
    def flag(self) -> str:
        return self.spelt or "--" + self.name.replace("_", "-")


BOOTSTRAP = Opt("bootstrap_servers", str, None, "Kafka bootstrap servers (default localhost:9092).", envvar="KAFKA_BOOTSTRAP_SERVERS")
TRANSFERS = Opt("transfers_topic", str, Topics.transfers, "Topic of transfer events.")
DISCLOSURES = Opt("disclosures_topic", str, Topics.disclosures, "Topic of disclosure events.")
DEAD_LETTERS = Opt("dead_letter_topic", str, Topics.dead_letter, "Topic refused records are forwarded to.")
PARTITIONS = Opt("partitions", int, 3, "Partitions of topics this creates.", minimum=1)
JSON = Opt("as_json", bool, False, "Print only JSON to stdout.", spelt="--json")

OPTIONS: tuple[Opt, ...] = (
    Opt("group", str, "dataflow-registry", "Consumer group."),
    Opt("stop_when_idle", float, None, "Exit after this many seconds without events."),
    Opt("max_events", int, None, "Exit after this many events.", minimum=1),
    Opt("batch_size", int, 2000, "Events per transaction at most.", minimum=1),
    Opt("session_timeout_ms", int, 6000, "Consumer-group session timeout (a killed member holds its partitions this long)."),
    Opt("heartbeat_interval_ms", int, 2000, "Consumer-group heartbeat interval."),
    BOOTSTRAP, TRANSFERS, DISCLOSURES, DEAD_LETTERS, PARTITIONS,
    Opt("outage_timeout", float, 300.0, "Exit non-zero after the broker or database is unavailable this long (s).", minimum=0),
    Opt("metrics_port", int, None, "Serve Prometheus metrics at http://0.0.0.0:P/metrics."),
    JSON,
)
_BY_FLAG = {o.flag: o for o in OPTIONS}
# the spellings Typer's int and float types (Click's, and pydantic's) read exactly as int() and
# float() do here: ASCII digits only, no sign, exponent, underscore or space
_PLAIN = {int: re.compile(r"[0-9]{1,18}"), float: re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")}
_ROOT_DB = "--db"


def read(args: Sequence[str]) -> Optional[dict[str, Any]]:
    """The values of ``OPTIONS`` (and the root's ``--db``/``--json``, set on :class:`Globals`)
    for a plain command line ``[--db URL] [--json] consume [OPTION VALUE]...``, or None."""
    rest = list(args)
    root: dict[str, Any] = {}
    while rest and rest[0] != "consume":
        name, value = _split(rest)
        if name in root or (name, value is None) not in ((_ROOT_DB, False), ("--json", True)):
            return None
        root[name] = value
    if not rest:
        return None
    rest.pop(0)
    given: dict[str, Any] = {}
    while rest:
        name, value = _split(rest)
        option = _BY_FLAG.get(name)
        if option is None or option.name in given or (value is None) != (option.kind is bool):
            return None
        parsed = True if option.kind is bool else _value(option, value)
        if parsed is None:
            return None
        given[option.name] = parsed
    if root.get(_ROOT_DB, "-") == "":
        return None
    Globals.db, Globals.json = root.get(_ROOT_DB) or _from_env("REGISTRY_DATABASE_URL"), "--json" in root
    return {o.name: given.get(o.name, _from_env(o.envvar) if o.envvar else o.default) for o in OPTIONS}


def _split(rest: list[str]) -> tuple[str, Optional[str]]:
    """The next option and its value as written (``--name=value`` or ``--name value``); a flag's
    value is None. An argument that is not a long option gives a name no table holds."""
    arg = rest.pop(0)
    if not arg.startswith("--") or arg == "--":
        return "", None
    name, equals, value = arg.partition("=")
    if equals:
        return name, value
    if name in _BY_FLAG and _BY_FLAG[name].kind is bool:  # --json, before and after `consume`
        return name, None
    if not rest or rest[0].startswith("-"):
        return "", None  # Click would take the next word, whatever it is: let it say what it makes of it
    return name, rest.pop(0)


def _value(option: Opt, text: Optional[str]) -> Any:
    if not text:
        return None
    if option.kind is str:
        return text
    if not _PLAIN[option.kind].fullmatch(text):
        return None
    number = option.kind(text)
    if option.minimum is not None and number < option.minimum:
        return None
    return number


def _from_env(name: Optional[str]) -> Optional[str]:
    return os.environ.get(name or "") or None  # as Click: an empty variable is no value


def run(values: dict[str, Any]) -> int:
    """The command's body: the worker until it stops; its exit code. Failures of the library or
    the store are exit 2 with one line (as every command's); anything else is a bug and raises."""
    from .common import emit, open_db, print_counts, print_failure

    def report(totals: Any) -> None:
        emit(totals, values["as_json"], lambda r: print_counts("consume", r))

    try:
        from consumers.worker import Worker, WorkerConfig
        from registry.stream.held import asked, hold_signals

        names = ("group", "partitions", "batch_size", "stop_when_idle", "max_events", "session_timeout_ms",
                 "heartbeat_interval_ms", "outage_timeout", "metrics_port")
        config = WorkerConfig(bootstrap=values["bootstrap_servers"], **{n: values[n] for n in names},
                              topics=Topics(values["transfers_topic"], values["disclosures_topic"], values["dead_letter_topic"]))
        hold_signals()
        worker = Worker(open_db(), config)
        worker.report = report
        if asked():
            worker.stop()
        report(worker.run())
        return worker.exit_code
    except Exception as exc:
        if not print_failure(exc):
            raise
        return 2
