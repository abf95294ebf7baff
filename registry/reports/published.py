"""The published recipients list and its change feed as documents (contract §8): the list as
JSON, Markdown, CSV or one self-contained printable HTML page (the page ``serve --public``
shows), and the change notices as JSON or an Atom feed for subscribers.

Atom ids are UUIDv5 names of (the controller first declared, manifest version, recipient,
change): the same store gives the same ids on every run, so a feed reader never shows a notice
twice; the feed's ``updated`` is its newest announcement, not the time it was rendered."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
import pycountry
from jinja2 import Environment, select_autoescape
from sqlalchemy.engine import Engine

from registry.answers.notices import ListedRecipient, Notice, change_notices, effect_order, nothing_published_message, notices_of, published_list
from registry.exceptions import InputError
from registry.model.declarations import versions
from registry.model.manifest import Manifest
from registry.model.times import format_time
from registry.model.transfers import EEA

from .csvcell import cell

__all__ = ["LIST_FORMATS", "FEED_FORMATS", "list_document", "changes_document", "public_rows", "entry_id"]

LIST_FORMATS = ("json", "md", "csv", "html")
FEED_FORMATS = ("json", "atom")
_NAMESPACE = uuid.UUID("6f2d3c1e-4b8a-5d7e-9c0f-1a2b3c4d5e6f")  # this project's names; never change it
# what a reader outside the company sees: the observed first/last seen stay internal evidence
_PUBLIC_FIELDS = ("recipient", "name", "service", "role", "processor_of", "country", "transfer_mechanism", "purposes",
                  "categories", "in_force_since", "status")
_COLUMNS = ("recipient", "name", "service", "role", "processor_of", "country", "transfer_mechanism", "purposes", "categories",
            "in_force_since", "status", "first_seen", "last_seen")
_MECHANISMS = {"adequacy": "adequacy decision", "scc": "standard contractual clauses", "bcr": "binding corporate rules",
               "derogation": "derogation (Art. 49)", "none": "none", None: "—"}


def _controller(engine: Engine) -> tuple[str, Manifest]:
    """The controller's first declared name (it names the feed) and the newest declared manifest."""
    stored = versions(engine)
    if not stored:
        raise InputError("no manifest declared yet: run `registry declare FILE` first")
    return stored[0][0].controller, stored[-1][1]


def public_rows(rows: list[ListedRecipient]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.model_dump().items() if k in _PUBLIC_FIELDS} for r in rows]


def list_document(engine: Engine, fmt: str, as_of: datetime | None = None, public: bool = False,
                  feed_url: str | None = None) -> str:
    """``subprocessors list``; ``public`` leaves out the observed first/last seen."""
    if fmt not in LIST_FORMATS:
        raise InputError(f"must be one of {', '.join(LIST_FORMATS)}", "--format")
    _controller(engine)
    rows = published_list(engine, as_of)
    dicts = public_rows(rows) if public else [r.model_dump() for r in rows]
    columns = _PUBLIC_FIELDS if public else _COLUMNS
    if fmt == "json":
        return orjson.dumps(dicts, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: cell("; ".join(v) if isinstance(v, list) else v) for k, v in d.items()} for d in dicts)
        return buf.getvalue()
    moment = as_of or datetime.now(timezone.utc)
    # every part of the document as published at ``moment``: only the versions declared by then
    known = [v for v in effect_order(engine) if v.declared_at <= moment]
    if not known:
        raise InputError(nothing_published_message(moment), "--as-of")
    in_force = [v for v in known if v.effective_from <= moment]
    manifest = (in_force or sorted(known, key=lambda v: v.number))[-1].manifest
    notices = notices_of(known)
    if fmt == "md":
        return _markdown(manifest, rows, notices, moment)
    return _html(manifest, rows, notices, moment, feed_url)


def _country(code: str) -> str:
    found = pycountry.countries.get(alpha_2=code)
    return f"{found.name} ({code})" if found else code


_MD = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " ", "\t": " ",
                     "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]"})


def _md(text: str) -> str:
    """Manifest text as literal text in a Markdown table cell or list item (no markup, no HTML)."""
    return text.translate(_MD)


def _safeguard(r: ListedRecipient) -> str:
    return "none needed (EEA)" if r.country in EEA else _MECHANISMS.get(r.transfer_mechanism, "—")


def _role(r: ListedRecipient, names: dict[str, str]) -> str:
    role = r.role.replace("_", " ")
    return role + (f" for {names.get(r.processor_of) or r.processor_of}" if r.processor_of else "")


def _markdown(m: Manifest, rows: list[ListedRecipient], notices: list[Notice], moment: datetime) -> str:
    taxonomy = m.taxonomy_view()
    names = {r.recipient: r.name for r in rows}
    lines = [f"# Recipients of personal data — {_md(m.controller.name)}", "", f"As published on {format_time(moment)}.", "",
             "| recipient | service | role | location | safeguard | data | since | status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        data = ", ".join(taxonomy.name("data_categories", c) for c in r.categories)
        cells = [r.name, r.service.replace("_", " "), _role(r, names), _country(r.country), _safeguard(r), data,
                 r.in_force_since[:10], r.status.replace("_", " ")]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines += ["", "## Changes", ""]
    lines += [f"- {_md(_title(n))}: announced {format_time(n.announced_at)}, in force {format_time(n.effective_from)}, "
              f"objections until {format_time(n.objection_deadline)}" + (" (short notice)" if n.short_notice else "")
              for n in reversed(notices)] or ["No change announced."]
    return "\n".join(lines) + "\n"


def _title(n: Notice) -> str:
    if n.change != "changed":
        return f"{n.name}: {n.change}"
    parts = []
    for field, (old, new) in n.fields.items():
        if field == "categories":
            added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            parts.append("data " + "; ".join(([f"+{', '.join(added)}"] if added else []) + ([f"−{', '.join(removed)}"] if removed else [])))
        else:
            parts.append(f"{field.replace('_', ' ')} {old or '—'} → {new or '—'}")
    return f"{n.name}: changed ({'; '.join(parts)})"


_PAGE = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recipients of personal data — {{ controller.name }}</title>
{% if feed_url %}<link rel="alternate" type="application/atom+xml" title="Changes to our recipients" href="{{ feed_url }}">{% endif %}
<style>
body{font:15px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1b1f24;max-width:1100px;margin:1.5em auto;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin:1.6em 0 .4em}.meta{color:#4d5761}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;margin:.4em 0 1em}
th,td{border:1px solid #c9d1d9;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f6f9}
.announced{font-weight:600;color:#7a4d00}.short{font-weight:600;color:#a40e26}a{color:#0b57d0}
@media print{body{margin:0;max-width:none}.noprint{display:none}a{color:inherit;text-decoration:none}}
</style>
</head>
<body>
<main>
<h1>Recipients of personal data</h1>
<p class="meta">{{ controller.name }}{% if controller.address %}, {{ controller.address }}{% endif %}.
List as of {{ moment }}.{% if controller.contact %} Questions: {{ controller.contact }}.{% endif %}</p>
<p>These are the companies that receive personal data from us, where they process it and under which safeguard
(GDPR Art. 13(1)(e)–(f)). We announce every new recipient, and every change of location, safeguard, role or data,
{{ notice_days }} days before it takes effect; customers may object until the objection deadline.</p>
<p class="noprint">{% if feed_url %}<a href="{{ feed_url }}">Subscribe to changes (Atom feed)</a> · {% endif %}{% if json_url %}<a href="{{ json_url }}">This list as JSON</a>{% endif %}</p>
<div class="scroll" tabindex="0" role="region" aria-label="Recipients">
<table>
<caption class="meta">{{ rows|length }} recipients</caption>
<thead><tr><th scope="col">Recipient</th><th scope="col">Service</th><th scope="col">Role</th><th scope="col">Location</th>
<th scope="col">Safeguard</th><th scope="col">Personal data</th><th scope="col">Since</th></tr></thead>
<tbody>
{% for r in rows %}<tr><td>{{ r.name }}</td><td>{{ r.service.replace("_", " ") }}</td>
<td>{{ role(r, names) }}</td>
<td>{{ country(r.country) }}</td><td>{{ safeguard(r) }}</td>
<td>{% for c in r.categories %}{{ category(c) }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{% if r.status == "announced" %}<span class="announced">announced: from {{ r.in_force_since[:10] }}</span>{% else %}{{ r.in_force_since[:10] }}{% endif %}</td></tr>
{% endfor %}</tbody>
</table>
</div>
<h2>Announced changes</h2>
{% if notices %}<div class="scroll" tabindex="0" role="region" aria-label="Announced changes"><table>
<thead><tr><th scope="col">Change</th><th scope="col">Announced</th><th scope="col">In force from</th><th scope="col">Objections until</th></tr></thead>
<tbody>
{% for n in notices %}<tr><td>{{ title(n) }}{% if n.short_notice %} <span class="short">(short notice)</span>{% endif %}</td>
<td>{{ day(n.announced_at) }}</td><td>{{ day(n.effective_from) }}</td><td>{{ day(n.objection_deadline) }}</td></tr>
{% endfor %}</tbody></table></div>
{% else %}<p>No change announced.</p>{% endif %}
</main>
</body>
</html>
""")


def _html(m: Manifest, rows: list[ListedRecipient], notices: list[Notice], moment: datetime, feed_url: str | None) -> str:
    taxonomy = m.taxonomy_view()
    return _PAGE.render(category=lambda k: taxonomy.name("data_categories", k), controller=m.controller, rows=rows, notices=list(reversed(notices)), moment=moment.strftime("%Y-%m-%d"),
                        notice_days=m.notice_period_days, feed_url=feed_url,
                        json_url=feed_url.removesuffix(".atom") + ".json" if feed_url else None,
                        names={r.recipient: r.name for r in rows}, country=_country, role=_role, safeguard=_safeguard,
                        title=_title, day=lambda t: t.strftime("%Y-%m-%d"))


def entry_id(controller: str, n: Notice) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"change|{controller}|{n.version}|{n.recipient}|{n.change}"))


def changes_document(engine: Engine, fmt: str, since: datetime | None = None, self_url: str | None = None,
                     page_url: str | None = None) -> str:
    """``subprocessors changes``: JSON rows, or an Atom feed (one entry per change notice)."""
    if fmt not in FEED_FORMATS:
        raise InputError(f"must be one of {', '.join(FEED_FORMATS)}", "--format")
    notices = change_notices(engine, since)
    if fmt == "json":
        return orjson.dumps([n.row().model_dump() for n in notices], option=orjson.OPT_INDENT_2).decode() + "\n"
    from feedgen.feed import FeedGenerator

    controller, manifest = _controller(engine)
    feed = FeedGenerator()
    feed.id("urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"feed|{controller}")))
    feed.title(_xml(f"Changes to the recipients of personal data — {manifest.controller.name}"))
    feed.author({"name": _xml(manifest.controller.name)})
    feed.language("en")
    if self_url:
        feed.link(href=self_url, rel="self", type="application/atom+xml")
    if page_url:
        feed.link(href=page_url, rel="alternate", type="text/html")
    ordered = effect_order(engine)
    newest = max((n.announced_at for n in notices), default=ordered[0].declared_at if ordered else datetime(1970, 1, 1, tzinfo=timezone.utc))
    feed.updated(newest)
    for n in notices:  # oldest first: feedgen prepends, so the newest is the feed's first entry
        entry = feed.add_entry()
        entry.id(entry_id(controller, n))
        entry.title(_xml(_title(n)))
        entry.updated(n.announced_at)
        entry.published(n.announced_at)
        if page_url:
            entry.link(href=page_url, rel="alternate", type="text/html")
        entry.content(_xml(f"{_title(n)}. Announced {format_time(n.announced_at)}; in force from {format_time(n.effective_from)}; "
                      f"objections until {format_time(n.objection_deadline)}"
                      + (" (short notice: in force before the objection deadline)." if n.short_notice else ".")
                      + "".join(f" {f.replace('_', ' ')}: {_plain(old)} → {_plain(new)}." for f, (old, new) in n.fields.items())),
                      type="text")
    return feed.atom_str(pretty=True).decode()


# characters XML 1.0 cannot carry: declare refuses them, but a store declared before it did may
# still hold one, and a feed must never fail for it
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return "—" if value is None else str(value)
