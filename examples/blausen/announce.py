"""What the example controller announces ahead (contract §8), so the published list, the change
feed and the ``before_notice`` finding show on a first run:

- a short-notice change: Hotjar moves its session recordings from Malta to Ireland in 7 days,
  while the objection period runs 30;
- a new sub-processor announced 30 days ahead: SendGrid, delivering support e-mail for Twilio;
- a support service that started sending to SendGrid already (``early_events``): data that
  flowed before the notice ran out.

The generated stream (``generate``) is left alone: its counts are what other tests check."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import orjson

from registry.model.manifest import Manifest, Recipient
from registry.model.subjects import subject_ref

from .generate import DEMO_SUBJECT_KEY, SPAN, START, envelope

__all__ = ["SENDGRID", "announced_versions", "early_events"]

SENDGRID = Recipient(key="sendgrid", name="SendGrid (support e-mail delivery for Twilio)", service="communications",
                     role="sub_processor", country="US", transfer_mechanism="scc", processor_of="twilio")


def announced_versions(base: Manifest) -> list[tuple[Manifest, timedelta]]:
    """The versions to declare after ``base``, each with how far ahead of now it takes effect,
    in declaration order. The later one carries the earlier one's change (versions are whole
    manifests, compared in the order they take effect)."""
    moved = base.model_copy(update={"recipients": [r.model_copy(update={"country": "IE"}) if r.key == "hotjar" else r
                                                   for r in base.recipients]})
    added = moved.model_copy(update={"recipients": [*moved.recipients, SENDGRID]})
    return [(moved, timedelta(days=7)), (added, timedelta(days=30))]


def early_events(count: int = 12, subject_key: str | None = None) -> list[bytes]:
    """Support e-mails relayed through SendGrid in the last weeks of the generated span: before
    the notice that announces SendGrid."""
    key = subject_key or os.environ.get("REGISTRY_SUBJECT_KEY") or DEMO_SUBJECT_KEY
    first = START + SPAN - timedelta(days=28)
    out = []
    for n in range(count):
        data: dict[str, Any] = {"recipient": SENDGRID.key, "data_categories": ["user.contact.email", "user.name"],
                                "purpose": "essential.service.operations.support", "legal_basis": "contract",
                                "data_subjects": ["customer"], "activity": "support",
                                "subject_refs": [subject_ref(f"customer-{100 + n}", key)], "record_count": 1}
        out.append(orjson.dumps(envelope(f"early-sendgrid-{n:03d}", "//services/support", first + timedelta(days=2 * n, hours=9), data)))
    return out
