"""The data map: emitting services → recipients (clustered by kind) → sub-processors, edges
labelled with the category groups they carry. Undeclared flows are red and dashed, recipients
receiving without a safeguard have a red border, declared edges nothing confirms are dotted."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import graphviz

from registry.answers.drift import classify_flow, drift_of
from registry.answers.flows import Observation
from registry.answers.graph import build_graph, recipient_node, source_node, subprocessors
from registry.exceptions import InputError
from registry.model.manifest import Manifest
from registry.model.taxonomy import valid_key

from .ropa import SERVICES

__all__ = ["datamap", "render"]

Format = Literal["svg", "png", "dot"]
_FONT = "Helvetica"


def datamap(manifest: Manifest, flows: list[Observation], category: str | None = None,
            recipient: str | None = None) -> graphviz.Digraph:
    """Every string from events or the manifest reaches dot escaped (``graphviz.escape``), and node
    ids are an injective encoding of the key: no label can break the file, no two keys share a node."""
    taxonomy = manifest.taxonomy_view()
    if category is not None and not valid_key(category):
        raise InputError("not a taxonomy key (like user.contact.email)", "category")
    if category:
        flows = [replace(o, categories=o.covered(category)) for o in flows if o.covered(category)]
    g = build_graph(manifest, flows)
    keep = _keep(g, flows, recipient)
    unsafe = {r.recipient: r.detail for r in drift_of(manifest, flows) if r.kind == "transfer_without_safeguard"}

    dot = graphviz.Digraph("datamap", graph_attr={
        "rankdir": "LR", "fontname": _FONT, "nodesep": "0.25", "ranksep": "1.6", "splines": "true", "newrank": "true",
        "label": _text(f"Data map — {manifest.controller.name}" + (f" — category {category}" if category else "")
                       + (f" — recipient {recipient}" if recipient else "")), "labelloc": "t", "fontsize": "20"},
        node_attr={"fontname": _FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled", "fillcolor": "white"},
        edge_attr={"fontname": _FONT, "fontsize": "9", "color": "#57606a", "fontcolor": "#57606a", "arrowsize": "0.7"})

    sources = sorted(n[1] for n in g if n[0] == "source" and n in keep)
    with dot.subgraph(name="cluster_services", graph_attr={"label": "Our services", "style": "rounded", "color": "#8c959f"}) as c:
        for s in sources:
            c.node(_id(source_node(s)), _text(s.removeprefix("//services/")), fillcolor="#ddf4ff")
    kinds: dict[str, list[str]] = {}
    for node, attrs in g.nodes(data=True):
        if node[0] == "recipient" and node in keep:
            kinds.setdefault(attrs.get("service") or "undeclared", []).append(node[1])
    for kind, keys in sorted(kinds.items()):
        label = SERVICES.get(kind, "Not in the manifest")
        with dot.subgraph(name=f"cluster_{kind.encode().hex()}", graph_attr={"label": label, "style": "rounded,dashed" if kind == "undeclared" else "rounded",
                                                               "color": "#cf222e" if kind == "undeclared" else "#8c959f"}) as c:
            for key in sorted(keys):
                attrs = g.nodes[recipient_node(key)]
                text = f"{attrs.get('name') or key}\n{key} · {attrs.get('country') or '?'}"
                style: dict[str, str] = {}
                if not attrs.get("declared"):
                    style = {"color": "#cf222e", "style": "rounded,dashed,filled", "fillcolor": "#ffebe9"}
                if key in unsafe:
                    text += "\n⚠ no transfer safeguard"
                    style.update({"color": "#cf222e", "penwidth": "2.2"})
                c.node(_id(recipient_node(key)), _text(text), **style)
    for u, v, data in g.edges(data=True):
        if u not in keep or v not in keep:
            continue
        if data["kind"] == "processor":
            dot.edge(_id(u), _id(v), label="sub-processor", style="dashed", color="#8250df", fontcolor="#8250df")
        elif data["flows"]:
            # one edge for the declared categories, one red edge for the undeclared ones; each
            # counts an event once however many of its categories it carries (contract §1)
            parts: dict[bool, list[tuple[Observation, list[str]]]] = {False: [], True: []}
            for o in data["flows"]:
                for bad in (False, True):
                    cats = [c for c in o.categories
                            if bool(classify_flow(manifest, o.source, o.recipient, c, o.purpose, o.legal_basis)) == bad]
                    if cats:
                        parts[bad].append((o, cats))
            for bad, part in parts.items():
                if part:
                    groups = sorted({taxonomy.name("data_categories", ".".join(c.split(".")[:2])) for _, cats in part for c in cats})
                    label = f"{', '.join(groups)}\n{sum(o.events for o, _ in part):,} events" + (" · undeclared" if bad else "")
                    dot.edge(_id(u), _id(v), label=_text(label),
                             **({"color": "#cf222e", "fontcolor": "#cf222e", "style": "dashed", "penwidth": "1.6"} if bad else {}))
        elif data["declared_by"] and not category:
            dot.edge(_id(u), _id(v), style="dotted", color="#afb8c1", label="declared, not observed", fontcolor="#8c959f")
    _legend(dot)
    return dot


def _keep(g, flows: list[Observation], recipient: str | None) -> set:  # type: ignore[no-untyped-def,type-arg]
    """The nodes to draw: with a recipient filter, its flows and its sub-processor chain only."""
    if recipient is None:
        return set(g.nodes)
    if recipient_node(recipient) not in g:
        raise InputError(f"no recipient {recipient!r} is declared or observed", "recipient")
    keep = {recipient_node(recipient)} | {recipient_node(s) for s, _ in subprocessors(g, recipient)}
    keep |= {source_node(f.source) for f in flows if f.recipient == recipient}
    return keep


def _legend(dot: graphviz.Digraph) -> None:
    with dot.subgraph(name="cluster_legend", graph_attr={"label": "Legend", "style": "rounded", "color": "#8c959f", "fontsize": "11"}) as c:
        c.node("lg_s", "service", fillcolor="#ddf4ff")
        c.node("lg_r", "declared recipient")
        c.node("lg_u", "undeclared recipient", color="#cf222e", style="rounded,dashed,filled", fillcolor="#ffebe9")
        c.node("lg_w", "no transfer safeguard", color="#cf222e", penwidth="2.2")
        c.node("lg_p", "sub-processor")
        c.edge("lg_s", "lg_r", label="observed, declared")
        c.edge("lg_s", "lg_u", label="observed, undeclared", color="#cf222e", fontcolor="#cf222e", style="dashed")
        c.edge("lg_r", "lg_p", label="sub-processor", style="dashed", color="#8250df", fontcolor="#8250df")
        c.edge("lg_s", "lg_w", label="declared, not observed", style="dotted", color="#afb8c1", fontcolor="#8c959f")


def _id(node: tuple[str, str]) -> str:
    """Injective: ``//svc/a-b`` and ``//svc/a.b`` are two nodes."""
    return f"{node[0]}_{node[1].encode().hex()}"


def _text(label: str) -> str:
    """A label as literal text: backslashes and ``<...>`` lose their meaning to dot."""
    return graphviz.escape(label)  # type: ignore[no-any-return]


def render(dot: graphviz.Digraph, fmt: Format) -> bytes:
    if fmt == "dot":
        return dot.source.encode()
    return dot.pipe(format=fmt)  # type: ignore[no-any-return]

