"""Alembic environment: runs migrations on the engine the Database handed over."""
from alembic import context

from experiments.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
