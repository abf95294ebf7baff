"""The record as one self-contained HTML file (inline CSS, no scripts), readable on screen and
printable: one section per activity, then the undeclared flows."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from registry.model.manifest import Manifest

from .ropa import LEGAL_BASES, MECHANISMS, Labels, Ropa, describe_changes

__all__ = ["to_html"]

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


def _row(label: str, value: str) -> str:
    return f"<tr><th>{escape(label)}</th><td>{value}</td></tr>"


def to_html(ropa: Ropa, manifest: Manifest) -> str:
    c, labels = ropa.controller, Labels(manifest.taxonomy_view())
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
        transfers = "<br>".join(escape(f"{t.recipient} → {t.country}: {MECHANISMS[t.mechanism]}") for t in a.transfers) or "none"
        parts += [f"<section><h2>{escape(a.name)} <code>{escape(a.key)}</code> <span class='badge {a.status}'>"
                  f"{a.status.replace('_', ' ')}</span></h2><table>",
                  _row("Purposes", escape(labels.purposes(a.purposes))), _row("Lawful basis", escape(LEGAL_BASES[a.legal_basis])),
                  _row("Data subjects", escape(labels.subjects(a.data_subjects))),
                  _row("Personal data", escape(labels.categories(a.data_categories))), _row("Recipients", recipients),
                  _row("Third-country transfers", transfers), _row("Retention", escape(a.retention or "—")),
                  _row("Security measures", escape(a.security_measures or "—")),
                  _row("Evidence", escape(f"{ev.events} events, {_when(ev.first_seen)} to {_when(ev.last_seen)}; observed: "
                                          f"{', '.join(ev.recipients_observed) or 'none'}")),
                  "</table></section>"]
    parts.append("<section><h2>Observed but not declared</h2>")
    if ropa.undeclared:
        parts.append("<table><tr><th>kind</th><th>source</th><th>recipient</th><th>category</th><th>purpose</th><th>events</th><th>detail</th></tr>")
        parts += [f"<tr><td><span class='badge warn'>{escape(r.kind.replace('_', ' '))}</span></td><td>{escape(r.source or '')}</td>"
                  f"<td>{escape(r.recipient)}</td><td>{escape(r.category or '')}</td><td>{escape(r.purpose or '')}</td>"
                  f"<td>{r.events}</td><td>{escape(r.detail)}</td></tr>" for r in ropa.undeclared]
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
