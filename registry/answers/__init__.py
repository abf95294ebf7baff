"""Every question, computed from the store: observed flows per window (flows), the graph of
services, recipients and sub-processors (graph), the questions of the CLI, API and pages
(questions: recipients of a category, one recipient, one subject, sub-processor chains), drift
between declared and observed and what to do about it (drift, drift_guide), weekly timelines and
the dashboard's overview.

Pure functions over the store and the graph. May import :mod:`registry.stream` (status),
:mod:`registry.intake`, :mod:`registry.ledger` and :mod:`registry.model`; never :mod:`consumers`."""
