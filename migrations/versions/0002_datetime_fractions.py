"""Fractional seconds on MySQL datetimes

MySQL's plain DATETIME drops fractions of a second; reservation and cancellation times
arrive from Redis in milliseconds and must keep them. SQLite stores text and needs nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:20:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable)
COLUMNS = [
    ("venues", "created_at", False),
    ("performances", "created_at", False),
    ("sessions", "starts_at", False),
    ("sessions", "booking_opens_at", False),
    ("sessions", "created_at", False),
    ("reservations", "created_at", False),
    ("reservations", "cancelled_at", True),
]


def _alter(new_type: mysql.DATETIME, old_type: mysql.DATETIME) -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table, column, type_=new_type, existing_type=old_type, existing_nullable=nullable
        )


def upgrade() -> None:
    _alter(mysql.DATETIME(fsp=6), mysql.DATETIME())


def downgrade() -> None:
    _alter(mysql.DATETIME(), mysql.DATETIME(fsp=6))
