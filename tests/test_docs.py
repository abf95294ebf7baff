"""Every CLI command is in the README's command table (as sqlite-utils' tests/test_docs.py does)."""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterator

import pytest
import typer

from registry.cli import app

from .conftest import ROOT


def _commands(group: Any, prefix: str = "") -> Iterator[str]:
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):  # a command group
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_cli_has_its_command_groups() -> None:
    assert {"declare", "ingest", "recipients", "consume", "status", "disclosures verify", "manifests diff",
            "import fides", "tokens create"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    assert any(f"`{command}" in line or f"/ `{command.split()[-1]}" in line for line in table), command


def _mistakes() -> tuple[list[tuple[str, str]], str]:
    """The (command, message) pairs of the README's "Common mistakes", and its request.yaml."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Common mistakes"):text.index("## Web service")]
    pairs = re.findall(r"^\$ registry (.+)\n(error: .+)$", section, re.M)
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert yaml_block
    return pairs, yaml_block.group(1)


def test_the_common_mistakes_are_what_the_cli_prints(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from .conftest import EXAMPLE_MANIFEST

    pairs, request = _mistakes()
    assert len(pairs) >= 7
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGISTRY_DATABASE_URL", "sqlite:///registry.db")
    runner = CliRunner()
    assert runner.invoke(app, ["declare", str(EXAMPLE_MANIFEST)]).exit_code == 0
    (tmp_path / "request.yaml").write_text(request)
    for command, message in pairs:
        result = runner.invoke(app, shlex.split(command))
        assert (result.exit_code, result.stderr.strip()) == (2, message), command
