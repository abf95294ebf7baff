"""``registry consume`` reads a plain command line without Typer (issue 20: start-up CPU). It must
read every line it takes exactly as the Typer command does, and leave every other line to Typer:
compared here on generated command lines, and in a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from registry.cli import stream
from registry.cli.common import Globals
from registry.cli.consume import OPTIONS, read
from registry.cli.root import build

ROOT = Path(__file__).resolve().parent.parent
ENV = ("KAFKA_BOOTSTRAP_SERVERS", "REGISTRY_DATABASE_URL")
app = build(("stream",))


def _by_typer(args: list[str], env: dict[str, str | None]) -> tuple[int, dict[str, Any] | None, tuple[Any, ...]]:
    """Exit code, the values the Typer command gave its body, and the root options it set."""
    seen: list[dict[str, Any]] = []
    Globals.db, Globals.json = None, False
    with mock.patch.object(stream, "run", lambda values: seen.append(values) or 0):
        result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, (seen[0] if seen else None), (Globals.db, Globals.json)


def _by_reader(args: list[str], env: dict[str, str | None]) -> tuple[dict[str, Any] | None, tuple[Any, ...]]:
    Globals.db, Globals.json = None, False
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if v is not None}):
        for name in [k for k, v in env.items() if v is None]:
            os.environ.pop(name, None)
        return read(args), (Globals.db, Globals.json)


# mostly lines the reader takes (each is then compared with Typer), some it must leave to Typer
_FLAGS = [o.flag for o in OPTIONS] * 6 + ["--nope", "--help", "-h", "--", "--db", "--group-"]
_PLAIN = ["5", "0", "1", "007", "2.5", "0.0", "12", "kafka:9092", "g p", "é"]
_ODD = ["-1", "", "abc", "1e3", "nan", "inf", " 5", "1_000", "+3", "1.", ".5", "9" * 20, "--group", "-x"]
_word = st.one_of(st.sampled_from(_PLAIN * 3 + _ODD), st.text(max_size=6))


@st.composite
def _lines(draw: st.DrawFn) -> tuple[list[str], dict[str, str | None]]:
    root: list[str] = draw(st.sampled_from([[], ["--json"], ["--db", "sqlite:///a.db"], ["--db=sqlite:///b.db", "--json"]] * 3
                                           + [["--db"], ["--db="], ["--json", "--json"], ["--nope"]]))
    args = [*root, "consume"]
    for _ in range(draw(st.integers(0, 4))):
        flag = draw(st.sampled_from(_FLAGS))
        if flag == "--json" or draw(st.booleans()):
            args.append(flag)
            if flag != "--json" and draw(st.integers(0, 19)):
                args.append(draw(_word))
        else:
            args.append(f"{flag}={draw(_word)}")
    env = {name: draw(st.sampled_from([None, "", "from-env"])) for name in ENV}
    return args, env


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lines())
def test_a_line_the_reader_takes_is_read_as_typer_reads_it(line: tuple[list[str], dict[str, str | None]]) -> None:
    args, env = line
    values, root = _by_reader(args, env)
    event("read without Typer" if values is not None else "left to Typer")
    if values is None:
        return  # Typer reads it: its help, or its exit-2 error
    code, typer_values, typer_root = _by_typer(args, env)
    assert code == 0, args
    assert _typed(values) == _typed(typer_values), args
    assert root == typer_root, args


def _typed(values: dict[str, Any] | None) -> Any:
    """Values with their types: 300 and 300.0 are equal, but not the same value to pass on."""
    return None if values is None else {name: (type(value), value) for name, value in values.items()}


@pytest.mark.parametrize("args", [
    ["consume"],
    ["--db", "sqlite:///x.db", "--json", "consume", "--group", "g1", "--stop-when-idle", "2.5", "--max-events", "10"],
    ["consume", "--batch-size=500", "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "2000", "--partitions", "4",
     "--bootstrap-servers", "127.0.0.1:9092", "--transfers-topic", "t", "--disclosures-topic", "d",
     "--dead-letter-topic", "x", "--outage-timeout", "0", "--metrics-port", "9000", "--json"],
])
def test_plain_lines_are_read_without_typer(args: list[str]) -> None:
    """The lines the deployment and the tests write are taken by the reader (else it saves nothing)."""
    env: dict[str, str | None] = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "REGISTRY_DATABASE_URL": None}
    values, root = _by_reader(args, env)
    assert values is not None
    _, typer_values, typer_root = _by_typer(args, env)
    assert (_typed(values), root) == (_typed(typer_values), typer_root)


def test_only_a_text_option_without_default_is_read_from_the_environment() -> None:
    """What ``read`` assumes of an option with an environment variable (it takes the text as
    it is, and an empty variable as no value): true of every option in the table."""
    assert all(o.kind is str and o.default is None for o in OPTIONS if o.envvar)


@pytest.mark.parametrize("args", [
    ["consume", "--help"], ["consume", "--max-events", "0"], ["consume", "--batch-size", "1e3"], ["consume", "--group"],
    ["consume", "--group", "a", "--group", "b"], ["consume", "extra"], ["--db", "consume"], ["consume", "--db", "x"],
    ["consume", "--json=1"], ["consume", "--stop-when-idle", "-1"],
])
def test_other_lines_are_left_to_typer(args: list[str]) -> None:
    assert _by_reader(args, {})[0] is None


@pytest.mark.slow  # ~10 s: the worker gives the unreachable broker its bootstrap time
def test_a_plain_consume_process_never_loads_typer_or_click(tmp_path: Path) -> None:
    """A real process (``python -m registry``) that fails to reach a broker: its error is the
    contract's one line and exit 2, and it never imported the CLI framework."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": ""}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "registry", "--db", f"sqlite:///{tmp_path / 'r.db'}",
                           "consume", "--bootstrap-servers", "127.0.0.1:9", "--outage-timeout", "0", "--stop-when-idle", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "consumers.worker" in imported  # the worker ran
    assert not {"typer", "click", "registry.cli.root", "registry.cli.options"} & imported
    said = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and said[-1].startswith("error: cannot reach Kafka at 127.0.0.1:9"), said


def test_a_closed_stdout_is_exit_1_without_a_traceback(tmp_path: Path) -> None:
    """As Click's own commands: ``registry consume ... | head`` that stops reading is exit 1 and no
    traceback. A stop asked before the start makes the worker print its totals at once."""
    probe = ("import sys\nimport registry.stream.held as held\nheld._ASKED.append(15)\n"
             f"sys.argv = ['registry', '--db', 'sqlite:///{tmp_path / 'r.db'}', 'consume', '--json']\n"
             "from registry.cli import main\nmain()\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("taken", [False, True], ids=["no_such_port", "port_in_use"])
def test_a_metrics_port_that_cannot_be_served_is_exit_2_with_one_line(tmp_path: Path, taken: bool) -> None:
    """Bad input is a clear error, never a traceback: a port past 65535 or one already taken."""
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1] if taken else 70000
        done = subprocess.run([sys.executable, "-m", "registry", "--db", f"sqlite:///{tmp_path / 'r.db'}", "consume",
                               "--bootstrap-servers", "127.0.0.1:9", "--metrics-port", str(port)],
                              cwd=ROOT, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": ""}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"error: cannot serve metrics on 0.0.0.0:{port}: "), done.stderr
    assert "Traceback" not in done.stderr
