"""Alembic environment: run against the connection handed over by ``registry.model.store.migrate``."""

from alembic import context

from registry.model.tables import metadata

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
