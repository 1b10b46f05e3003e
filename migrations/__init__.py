"""Alembic migrations of the shared schema."""
