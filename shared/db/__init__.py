"""The shared relational schema (SQLAlchemy 2) and engine helpers."""
