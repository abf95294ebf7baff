"""The web service (``registry serve``): the JSON API of contract §7 (api), server-rendered pages
(pages, render, templates), sign-in and roles (auth, sessions) and bearer tokens (tokens).

May import every package but :mod:`registry.cli`."""

from .app import create_app

__all__ = ["create_app"]
