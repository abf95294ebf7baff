"""Alembic environment: run against the connection handed over by ``registry.model.store.migrate``."""

from alembic import context
from sqlmodel import SQLModel

import registry.model.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
