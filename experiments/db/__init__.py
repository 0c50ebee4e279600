"""Storage: SQLAlchemy models, engine set-up and Alembic migrations."""
from experiments.db.engine import Database, database_url_from_env, interpsy_home

__all__ = ["Database", "database_url_from_env", "interpsy_home"]
