"""What is declared and how it is stored: the taxonomy, the manifest and its effective-dated
versions (declarations, history), the event envelope and its checks (events, canonical: the
payload hash, subjects: refs and the raw-identifier scan), times, the JSON Schemas, transfer rules, the store's tables and
migrations, and retrying a store transaction.

May import only :mod:`registry.exceptions`: every other package stands on this one."""
