"""The command line, thin: each command opens the store, calls one library function and prints the
result (a rich table, or only JSON with ``--json``). Library errors become exit 2 with one line on
stderr; findings asked to fail become exit 1.

:mod:`.entry` starts a command line, :mod:`.root` assembles the groups; :mod:`.options` and
:mod:`.common` hold what they share. May import every other
package of the registry (it is the top layer), but only inside command bodies, so that
``registry --help`` starts fast. ``app`` (every command) is built on first use."""

from typing import Any

from .entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from .entry import GROUPS
        from .root import build

        globals()["app"] = built = build(GROUPS)
        return built
    raise AttributeError(name)
