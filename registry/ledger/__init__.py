"""The disclosure ledger and its proofs: the signing key (keys), the canonical entry, its hash and
the signed head (heads), anchors kept outside the database (anchors), the hash chain with append
and verify (chain), and the disclosure requests logged into it (disclosures).

Inside, bottom first: keys → heads → anchors → chain → disclosures. May import
:mod:`registry.model` and :mod:`registry.exceptions`."""

import os
from pathlib import Path

# here, not in .anchors: the worker asks whether anchors are kept without loading the ledger
ANCHOR_ENV = "REGISTRY_LEDGER_ANCHOR_FILE"


def anchor_path() -> Path | None:
    """The anchor file ``REGISTRY_LEDGER_ANCHOR_FILE`` names, if any."""
    value = os.environ.get(ANCHOR_ENV)
    return Path(value) if value else None
