"""The public API as services import it (httpx's tests/test_exported_members.py): every name in
``registry.__all__`` resolves, is the object its home module defines, and the entry points run."""

from __future__ import annotations

import subprocess
import sys

import registry


def test_every_exported_name_resolves_to_its_home() -> None:
    from registry.intake.ingest import Ingestor
    from registry.model.subjects import subject_ref
    from registry.stream.emitter import Emitter

    assert set(registry.__all__) <= set(dir(registry))
    for name in registry.__all__:
        assert getattr(registry, name).__name__ == name
    assert (registry.Emitter, registry.Ingestor, registry.subject_ref) == (Emitter, Ingestor, subject_ref)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        registry.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("registry.no_such_name resolved")


def test_python_dash_m_registry_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "registry", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "recipients" in done.stdout and "Traceback" not in done.stderr
