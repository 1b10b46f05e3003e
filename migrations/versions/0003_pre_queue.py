"""The pre-queue of a session's waiting room

A session's queue may open before booking (``queue_pre_queue_opens_at``); its entrants are
put in line by a draw at opening, shuffled unless ``queue_shuffle_at_open`` is false.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 02:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    datetime_type = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("queue_pre_queue_opens_at", datetime_type, nullable=True))
        batch.add_column(
            sa.Column(
                "queue_shuffle_at_open", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("queue_shuffle_at_open")
        batch.drop_column("queue_pre_queue_opens_at")
