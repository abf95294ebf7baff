"""Every CLI command is in the README's command table (as sqlite-utils' tests/test_docs.py does)."""

from __future__ import annotations

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
