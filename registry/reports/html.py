"""The record as one self-contained HTML file (inline CSS, no scripts), readable on screen and
printable: one section per activity, then the undeclared flows."""

from __future__ import annotations

from datetime import datetime, timezone
import re
from html import escape

from registry.model.manifest import Manifest
from registry.model.taxonomy import Kind, Taxonomy

from .ropa import LEGAL_BASES, MECHANISMS, Labels, Ropa, describe_changes

__all__ = ["to_html", "key_names", "label_keys"]

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*[a-z0-9_]")

_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1b1f24;max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f6f9;width:24%}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;font-weight:600}
.confirmed{background:#dafbe1;color:#116329}.declared_not_observed{background:#fff1c2;color:#7a4d00}.warn{background:#ffebe9;color:#a40e26}
.meta{color:#57606a}code{font-size:.9em;background:#f3f6f9;padding:0 3px;border-radius:3px}
@media print{body{margin:0;max-width:none}section{page-break-inside:avoid}}
"""


def _when(text: str | None) -> str:
    """``2026-03-02 09:00 UTC`` for a person reading the page (the JSON and CSV keep RFC 3339)."""
    if not text:
        return "—"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _term(key: str, name: str) -> str:
    """A name a person reads, with the key an engineer searches for on hover."""
    return f'<abbr title="{escape(key)}">{escape(name)}</abbr>'


def key_names(taxonomy: Taxonomy, manifest: Manifest | None) -> dict[str, str]:
    """Every taxonomy and recipient key with the name a person reads (recipients win a clash:
    a detail sentence names recipients more often than subject categories)."""
    kinds: tuple[Kind, ...] = ("data_subjects", "data_uses", "data_categories")
    names = {k: taxonomy.name(kind, k) for kind in kinds for k in taxonomy.keys(kind)}
    names.update({r.key: r.name for r in manifest.recipients} if manifest else {})
    return names


def label_keys(text: str, names: dict[str, str]) -> str:
    """HTML of ``text`` with each known key replaced by its name, the key on hover: a finding's
    detail reads "no activity with Sift covers Precise location" with the keys one hover away."""
    out, last = [], 0
    for match in _KEY.finditer(text):
        name = names.get(match.group())
        if name is None:
            continue
        out += [escape(text[last:match.start()]), _term(match.group(), name)]
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def _row(label: str, value: str) -> str:
    return f"<tr><th>{escape(label)}</th><td>{value}</td></tr>"


def to_html(ropa: Ropa, manifest: Manifest) -> str:
    c, labels = ropa.controller, Labels(manifest.taxonomy_view())
    names = {r.key: r.name for r in manifest.recipients}
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>Record of processing — {escape(c['name'] or '')}</title>",
             f"<style>{_CSS}</style><h1>Record of processing activities</h1>",
             f"<p class=meta>GDPR Art. 30 · generated {escape(_when(ropa.generated_at))} from declarations checked against observed events"
             + (f" · <strong>as of {escape(_when(ropa.as_of))}</strong>" if ropa.as_of else "") + "</p>",
             "<table>", _row("Controller", escape(f"{c['name']}, {c.get('address') or ''}")), _row("Contact", escape(c.get("contact") or "—")),
             _row("Data protection officer", escape(c.get("dpo") or "—")), _row("Representative", escape(c.get("representative") or "—")),
             "</table>"]
    for a in ropa.activities:
        ev = a.evidence
        recipients = "<br>".join(escape(f"{r.name} — {r.role.replace('_', ' ')}, {r.country}") for r in a.recipients)
        transfers = "<br>".join(f"{_term(t.recipient, names.get(t.recipient, t.recipient))} → {escape(t.country)}: "
                                f"{escape(MECHANISMS[t.mechanism])}" for t in a.transfers) or "none"
        parts += [f"<section><h2>{escape(a.name)} <code>{escape(a.key)}</code> <span class='badge {a.status}'>"
                  f"{a.status.replace('_', ' ')}</span></h2><table>",
                  _row("Purposes", escape(labels.purposes(a.purposes))), _row("Lawful basis", escape(LEGAL_BASES[a.legal_basis])),
                  _row("Data subjects", escape(labels.subjects(a.data_subjects))),
                  _row("Personal data", escape(labels.categories(a.data_categories))), _row("Recipients", recipients),
                  _row("Third-country transfers", transfers), _row("Retention", escape(a.retention or "—")),
                  _row("Security measures", escape(a.security_measures or "—")),
                  _row("Evidence", escape(f"{ev.events:,} events, {_when(ev.first_seen)} to {_when(ev.last_seen)}; observed: ")
                       + (", ".join(_term(k, names.get(k, k)) for k in ev.recipients_observed) or "none")),
                  "</table></section>"]
    parts.append("<section><h2>Observed but not declared</h2>")
    if ropa.undeclared:
        parts.append("<table><tr><th>Finding</th><th>Sent by</th><th>Recipient</th><th>Personal data</th><th>Purpose</th>"
                     "<th>Events</th><th>Detail</th></tr>")
        taxonomy = labels.taxonomy
        every = key_names(taxonomy, manifest)
        parts += [f"<tr><td><span class='badge warn'>{escape(r.kind.replace('_', ' ').capitalize())}</span></td>"
                  f"<td>{escape(r.source or '—')}</td><td>{_term(r.recipient, names.get(r.recipient, r.recipient))}</td>"
                  f"<td>{_term(r.category, taxonomy.name('data_categories', r.category)) if r.category else '—'}</td>"
                  f"<td>{_term(r.purpose, taxonomy.name('data_uses', r.purpose)) if r.purpose else '—'}</td>"
                  f"<td class=num>{r.events:,}</td><td>{label_keys(r.detail, every)}</td></tr>" for r in ropa.undeclared]
        parts.append("</table>")
    else:
        parts.append("<p>Nothing: every observed flow is declared.</p>")
    parts.append("</section><section><h2>History of the declarations</h2>"
                 "<p class=meta>Each manifest version in the order it took effect, with what it changed against the version in force before it.</p>"
                 "<table><tr><th>version</th><th>effective from</th><th>declared at</th><th>changes</th></tr>")
    parts += [f"<tr><td>{h.version}</td><td>{escape(_when(h.effective_from))}</td><td>{escape(_when(h.declared_at))}</td>"
              f"<td>{'<br>'.join(escape(line) for line in describe_changes(h))}</td></tr>" for h in ropa.history]
    parts.append("</table></section></html>")
    return "\n".join(parts)
