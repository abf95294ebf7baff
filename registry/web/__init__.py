"""The web service (``registry serve``): the JSON API of contract §7 and server-rendered pages."""

from .app import create_app

__all__ = ["create_app"]
