"""The schema. api_server owns the catalog tables; ticket_server's worker owns reservations
and rankings. Constraints make the database itself refuse a seat sold twice in a session
and a reservation stored twice."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, UTCDateTime, utcnow

# MySQL's BIGINT AUTO_INCREMENT; SQLite only autoincrements a plain INTEGER primary key.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Venue(Base):
    """A place with a fixed seat map."""

    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500))
    seat_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    seats: Mapped[list[Seat]] = relationship(
        back_populates="venue", order_by="Seat.id", cascade="all, delete-orphan"
    )


class Seat(Base):
    """One seat of a venue; ``label`` is row and 1-based number, e.g. ``A-7``."""

    __tablename__ = "seats"
    __table_args__ = (UniqueConstraint("venue_id", "label"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(32))
    row: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(32))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    venue: Mapped[Venue] = relationship(back_populates="seats")


class Performance(Base):
    """A show that plays in one venue, in one or more sessions."""

    __tablename__ = "performances"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    venue: Mapped[Venue] = relationship()
    sessions: Mapped[list[PerformanceSession]] = relationship(
        back_populates="performance", order_by="PerformanceSession.starts_at"
    )


class PerformanceSession(Base):
    """One date of a performance: what users queue for and book seats in."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("queue_max_active >= 1", name="max_active_positive"),
        CheckConstraint("queue_admit_per_second > 0", name="admit_rate_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    performance_id: Mapped[int] = mapped_column(ForeignKey("performances.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    booking_opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queue_max_active: Mapped[int] = mapped_column(Integer)
    queue_admit_per_second: Mapped[float] = mapped_column(Numeric(10, 3, asdecimal=False))
    # The pre-queue (API.md "Queue admission"): joining opens here, before booking, and the
    # entrants are put in line by a draw at opening (shuffled unless told otherwise).
    queue_pre_queue_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    queue_shuffle_at_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    performance: Mapped[Performance] = relationship(back_populates="sessions")


class Reservation(Base):
    """A confirmed (or later cancelled) reservation, written by the worker from the stream.

    The id is the one ticket_server assigned in Redis, so replaying an event cannot store a
    reservation twice; ``(session_id, rank)`` is unique for the same reason.
    """

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("session_id", "rank"),
        Index("ix_reservations_session_id_status", "session_id", "status"),
        Index("ix_reservations_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    nickname: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    rank: Mapped[int] = mapped_column(Integer)
    completion_ms: Mapped[int] = mapped_column(BigInteger)
    queue_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seat_ids: Mapped[list[int]] = mapped_column(JSON)
    seat_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    seats: Mapped[list[ReservationSeat]] = relationship(
        back_populates="reservation", cascade="all, delete-orphan"
    )


class ReservationSeat(Base):
    """A seat held by a live reservation. Unique per (session, seat): the database refuses
    a seat sold twice. Rows are deleted when the reservation is cancelled, so the seat can
    be sold again; the reservation keeps ``seat_ids`` for history."""

    __tablename__ = "reservation_seats"
    __table_args__ = (UniqueConstraint("session_id", "seat_id"),)

    reservation_id: Mapped[str] = mapped_column(
        ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    seat_id: Mapped[int] = mapped_column(ForeignKey("seats.id"), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))

    reservation: Mapped[Reservation] = relationship(back_populates="seats")


class Ranking(Base):
    """Who booked fastest in a session: one row per live confirmed reservation."""

    __tablename__ = "rankings"
    __table_args__ = (UniqueConstraint("session_id", "rank"),)

    reservation_id: Mapped[str] = mapped_column(
        ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    rank: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(64))
    nickname: Mapped[str] = mapped_column(String(64))
    completion_ms: Mapped[int] = mapped_column(BigInteger)
    seat_count: Mapped[int] = mapped_column(Integer)
    queue_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
