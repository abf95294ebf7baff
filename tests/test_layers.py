"""The architecture as a test: no import circle between modules, and no import from a lower layer
to a higher one (``registry/__init__.py`` draws the layers). Every import counts, those inside
functions and under ``TYPE_CHECKING`` too: a lazy import still makes the lower module depend on
the higher one. The public facade ``registry/__init__.py`` (and ``__main__``) stand outside."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
# bottom first; a package may import its own modules and any package of a lower layer, nothing
# of its layer-mates and nothing above
LAYERS: list[set[str]] = [
    {"registry.exceptions"},
    {"registry.model"},
    {"registry.ledger"},
    {"registry.intake"},
    {"registry.stream"},
    {"consumers", "registry.answers"},
    {"registry.reports", "registry.interchange"},
    {"registry.web"},
    {"registry.cli"},
]
FACADE = {"registry", "registry.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    files = {module_name(p): p for top in ("registry", "consumers") for p in (ROOT / top).rglob("*.py")
             if "migrations" not in p.parts}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                # `from registry.ledger import chain` imports the module registry.ledger.chain
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                if target.split(".")[0] in ("registry", "consumers") and target != name:
                    graph.add_edge(name, target)
    return graph


def layer_of(module: str) -> tuple[int, str] | None:
    for index, layer in enumerate(LAYERS):
        for package in layer:
            if module == package or module.startswith(package + "."):
                return index, package
    return None


def circles(graph: nx.DiGraph) -> list[list[str]]:
    inner = graph.subgraph(n for n in graph if n not in FACADE)
    return sorted(sorted(c) for c in nx.strongly_connected_components(inner) if len(c) > 1)


def upward(graph: nx.DiGraph) -> list[str]:
    found = []
    for source, target in graph.edges:
        if source in FACADE or target in FACADE:
            continue
        have, want = layer_of(source), layer_of(target)
        assert have is not None, f"{source} is in no layer: add its package to LAYERS"
        assert want is not None, f"{target} is in no layer: add its package to LAYERS"
        if want[0] > have[0] or (want[0] == have[0] and want[1] != have[1]):
            found.append(f"{source} -> {target}")
    return sorted(found)


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_no_import_from_a_lower_layer_to_a_higher_one() -> None:
    assert upward(import_graph()) == []


def test_every_package_says_what_it_owns() -> None:
    for init in sorted((ROOT / "registry").glob("*/__init__.py")) + [ROOT / "consumers" / "__init__.py"]:
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{init.relative_to(ROOT)}: say what the package owns and what it may import"


def test_the_checks_find_a_circle_and_an_upward_import() -> None:
    # the checks themselves, on a drawn graph: a test that cannot fail proves nothing
    graph = nx.DiGraph([("registry.model.store", "registry.answers.flows"), ("registry.answers.flows", "registry.model.store"),
                        ("registry.stream.kafka", "consumers.worker"), ("registry.answers.flows", "consumers.worker")])
    assert circles(graph) == [["registry.answers.flows", "registry.model.store"]]
    assert upward(graph) == ["registry.answers.flows -> consumers.worker", "registry.model.store -> registry.answers.flows",
                             "registry.stream.kafka -> consumers.worker"]


# what each entry point must not load: the CLI's help needs none of the library, the worker needs
# the store and Kafka but not the graph, the taxonomy's pydantic models, the web stack or documents
HEAVY = ("sqlmodel", "sqlalchemy.orm", "alembic", "networkx", "fideslang.models", "fastapi", "jinja2", "openpyxl", "graphviz")


@pytest.mark.parametrize(("module", "allowed"), [("registry.cli", ()), ("consumers.worker", ()),
                                               ("registry.intake.ingest; registry.intake.ingest.EventValidator()", ())])
def test_startup_imports_stay_light(module: str, allowed: tuple[str, ...]) -> None:
    import subprocess
    import sys

    probe = f"import sys, {module}; print(' '.join(m for m in {HEAVY + ('fideslang',)!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if m not in allowed] == []
