"""Storage: SQLAlchemy models, the engine, and one store module per aggregate."""
