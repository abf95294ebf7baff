"""The graph model: emitting services → recipients → sub-processors, with the flows (category,
purpose, legal basis) on the edges, declared edges from the manifest and observed edges from the
store both marked. Built per question from the newest manifest and the window's flows."""

from __future__ import annotations

from typing import Iterable

import networkx as nx

from registry.model.manifest import Manifest

from .flows import Observation

__all__ = ["build_graph", "source_node", "recipient_node", "subprocessors", "erasure_fanout", "chain"]


def source_node(source: str) -> tuple[str, str]:
    return ("source", source)


def recipient_node(key: str) -> tuple[str, str]:
    return ("recipient", key)


def build_graph(manifest: Manifest | None, flows: Iterable[Observation] = ()) -> nx.DiGraph:
    """Nodes ``("source", s)`` and ``("recipient", key)``. Edge kinds: ``transfer`` (source →
    recipient; ``flows`` observed, ``declared_by`` activities) and ``processor`` (recipient →
    its sub-processor)."""
    g = nx.DiGraph()
    if manifest is not None:
        for r in manifest.recipients:
            g.add_node(recipient_node(r.key), kind="recipient", declared=True, **r.model_dump())
        for r in manifest.recipients:
            if r.processor_of:
                g.add_edge(recipient_node(r.processor_of), recipient_node(r.key), kind="processor")
        for a in manifest.activities:
            for source in a.sources:
                g.add_node(source_node(source), kind="source", key=source)
                for key in a.recipients:
                    _transfer_edge(g, source, key)["declared_by"].append(a.key)
    for flow in flows:
        node = recipient_node(flow.recipient)
        if node not in g:
            g.add_node(node, kind="recipient", declared=False, key=flow.recipient, name=flow.recipient,
                       service=None, role=None, country=flow.country or None)
        g.add_node(source_node(flow.source), kind="source", key=flow.source)
        _transfer_edge(g, flow.source, flow.recipient)["flows"].append(flow)
    return g


def _transfer_edge(g: nx.DiGraph, source: str, key: str) -> dict:  # type: ignore[type-arg]
    u, v = source_node(source), recipient_node(key)
    if not g.has_edge(u, v):
        g.add_edge(u, v, kind="transfer", flows=[], declared_by=[])
    return g.edges[u, v]  # type: ignore[no-any-return]


def _processor_children(g: nx.DiGraph, node: tuple[str, str]) -> list[tuple[str, str]]:
    return sorted(v for v in g.successors(node) if g.edges[node, v]["kind"] == "processor")


def subprocessors(g: nx.DiGraph, key: str) -> list[tuple[str, str]]:
    """(sub-processor, its direct parent) for every sub-processor under ``key``, transitively."""
    out: list[tuple[str, str]] = []
    if recipient_node(key) not in g:
        return out
    stack = [recipient_node(key)]
    seen = set(stack)
    while stack:
        node = stack.pop()
        for child in _processor_children(g, node):
            if child not in seen:
                seen.add(child)
                out.append((child[1], node[1]))
                stack.append(child)
    return sorted(out)


def erasure_fanout(g: nx.DiGraph, recipients: Iterable[str]) -> list[str]:
    """Everyone to notify (Art. 19): the recipients and all their sub-processors."""
    keys = set(recipients)
    for key in list(keys):
        keys.update(sub for sub, _ in subprocessors(g, key))
    return sorted(keys)


def chain(g: nx.DiGraph, key: str) -> list[str]:
    """Keys from the controller side down to ``key`` along ``processor`` edges."""
    path = [key]
    node = recipient_node(key)
    while node in g:
        parents = [u for u in g.predecessors(node) if g.edges[u, node]["kind"] == "processor"]
        if not parents:
            return path
        node = parents[0]
        path.insert(0, node[1])
    return path
