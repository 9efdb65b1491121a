"""Alembic migrations of the registry schema (run programmatically on open)."""
