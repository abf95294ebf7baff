"""One path from bytes to rows: decode and check each record (through :mod:`registry.model.events`),
write a batch in one transaction (ingest, with each ``(source, id)`` counted once by dedupe and bulk
writes per database in writes), and keep what
was refused with its reason (deadletters, and their replay).

May import :mod:`registry.ledger` (disclosures are appended to the ledger in the same transaction)
and :mod:`registry.model`."""
