"""Run the migrations on the connection upgrade_schema hands over, inside its transaction."""

from alembic import context

from smh_dashboard.storage import schema

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    # SQLite alters a table by copying it; batch mode is how Alembic does that.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
