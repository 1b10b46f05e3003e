"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 01:09:03.592485
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('venues',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=False),
    sa.Column('seat_count', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_venues'))
    )
    op.create_table('performances',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('venue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_performances_venue_id_venues')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_performances'))
    )
    with op.batch_alter_table('performances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_performances_title'), ['title'], unique=False)
        batch_op.create_index(batch_op.f('ix_performances_venue_id'), ['venue_id'], unique=False)

    op.create_table('seats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('venue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('row', sa.String(length=16), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=32), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_seats_venue_id_venues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seats')),
    sa.UniqueConstraint('venue_id', 'label', name=op.f('uq_seats_venue_id_label'))
    )
    with op.batch_alter_table('seats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seats_venue_id'), ['venue_id'], unique=False)

    op.create_table('sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('performance_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('starts_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.Column('booking_opens_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.Column('queue_max_active', sa.Integer(), nullable=False),
    sa.Column('queue_admit_per_second', sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=False),
    sa.Column('created_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint('queue_admit_per_second > 0', name=op.f('ck_sessions_admit_rate_positive')),
    sa.CheckConstraint('queue_max_active >= 1', name=op.f('ck_sessions_max_active_positive')),
    sa.ForeignKeyConstraint(['performance_id'], ['performances.id'], name=op.f('fk_sessions_performance_id_performances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions'))
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_performance_id'), ['performance_id'], unique=False)

    op.create_table('reservations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('nickname', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('completion_ms', sa.BigInteger(), nullable=False),
    sa.Column('queue_position', sa.Integer(), nullable=True),
    sa.Column('seat_ids', sa.JSON(), nullable=False),
    sa.Column('seat_count', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.base.UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', shared.db.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_reservations_session_id_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations')),
    sa.UniqueConstraint('session_id', 'rank', name=op.f('uq_reservations_session_id_rank'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index('ix_reservations_session_id_status', ['session_id', 'status'], unique=False)
        batch_op.create_index('ix_reservations_user_id', ['user_id'], unique=False)

    op.create_table('rankings',
    sa.Column('reservation_id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('nickname', sa.String(length=64), nullable=False),
    sa.Column('completion_ms', sa.BigInteger(), nullable=False),
    sa.Column('seat_count', sa.Integer(), nullable=False),
    sa.Column('queue_position', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['reservation_id'], ['reservations.id'], name=op.f('fk_rankings_reservation_id_reservations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_rankings_session_id_sessions')),
    sa.PrimaryKeyConstraint('reservation_id', name=op.f('pk_rankings')),
    sa.UniqueConstraint('session_id', 'rank', name=op.f('uq_rankings_session_id_rank'))
    )
    op.create_table('reservation_seats',
    sa.Column('reservation_id', sa.String(length=64), nullable=False),
    sa.Column('seat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['reservation_id'], ['reservations.id'], name=op.f('fk_reservation_seats_reservation_id_reservations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_reservation_seats_seat_id_seats')),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_reservation_seats_session_id_sessions')),
    sa.PrimaryKeyConstraint('reservation_id', 'seat_id', name=op.f('pk_reservation_seats')),
    sa.UniqueConstraint('session_id', 'seat_id', name=op.f('uq_reservation_seats_session_id_seat_id'))
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MySQL refuses to drop an index a FK still needs.
    for table in (
        "reservation_seats",
        "rankings",
        "reservations",
        "sessions",
        "seats",
        "performances",
        "venues",
    ):
        op.drop_table(table)
