"""Alembic environment: runs on the engine the gateway already built."""

from __future__ import annotations

from alembic import context

from store.models import Base

# The advisory lock migrations hold on PostgreSQL (any fixed number; 12345 is ours).
MIGRATION_LOCK = 12345
engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    # Batch mode rebuilds a SQLite table, and dropping a table that others reference fails
    # while foreign keys are enforced. SQLite's own recipe (lang_altertable.html, section 7):
    # enforcement off outside the transaction, foreign_key_check before the commit.
    driver = connection.connection.driver_connection
    if sqlite:
        driver.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            # store.migrate's progress, told of each migration as it is applied.
            on_version_apply=context.config.attributes.get("on_version_apply"),
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several nodes may start at once: one migrates while the others wait
                # here, then find the version it committed and nothing left to do.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.run_migrations()
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("the migration left rows whose foreign keys point nowhere")
    finally:
        if sqlite:
            driver.execute("PRAGMA foreign_keys=ON")
