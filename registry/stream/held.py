"""SIGTERM/SIGINT received while a ``registry consume`` process is still starting (imports, the
store's migrations, the first connections): kept instead of killing the process with -15, so
that the worker, once built, stops at once and exits 0 (contract §3: any state). Standard
library only, so that ``python -m registry consume`` can install it before anything heavy."""

from __future__ import annotations

import signal

__all__ = ["hold_signals", "asked"]

_ASKED: list[int] = []


def _keep(signum: int, _frame: object) -> None:
    _ASKED.append(signum)


def hold_signals() -> None:
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _keep)


def asked() -> bool:
    """A stop arrived while held."""
    return bool(_ASKED)
