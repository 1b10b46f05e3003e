"""``boxoffice seed --demo``: an idempotent demo catalog with a session open for booking."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.base import utcnow
from shared.db.engine import make_engine, make_session_factory
from shared.db.models import Performance, PerformanceSession, Seat, Venue

DEMO_VENUES = [
    {
        "name": "Olympic Hall",
        "address": "424 Olympic-ro, Songpa-gu, Seoul",
        "sections": [
            ("VIP", Decimal("150000"), ["A", "B"], 20),
            ("R", Decimal("120000"), ["C", "D", "E", "F"], 25),
            ("S", Decimal("90000"), ["G", "H", "I", "J"], 30),
        ],
    },
    {
        "name": "Blue Square",
        "address": "294 Itaewon-ro, Yongsan-gu, Seoul",
        "sections": [
            ("R", Decimal("110000"), ["A", "B", "C"], 16),
            ("S", Decimal("80000"), ["D", "E", "F", "G"], 16),
        ],
    },
]
DEMO_PERFORMANCES = [
    ("Aurora Live in Seoul", "The on-sale everyone is waiting for.", 0, [0, 2, 30]),
    ("Midnight Jazz Quartet", "An intimate evening of standards.", 1, [0, 7]),
    ("The Phantom Musical", "The classic, in a new production.", 1, [1, 14]),
]


def _venue(
    db: Session, name: str, address: str, sections: list[tuple[str, Decimal, list[str], int]]
) -> Venue:
    venue = db.scalar(select(Venue).where(Venue.name == name))
    if venue is not None:
        return venue
    venue = Venue(name=name, address=address)
    for grade, price, rows, per_row in sections:
        for row in rows:
            for n in range(1, per_row + 1):
                venue.seats.append(
                    Seat(label=f"{row}-{n}", row=row, number=n, grade=grade, price=price)
                )
    venue.seat_count = len(venue.seats)
    db.add(venue)
    db.flush()
    return venue


def seed_demo(url: str, *, max_active: int = 100, admit_per_second: float = 10.0) -> int:
    """Create the demo catalog unless it is there; returns the number of performances added."""
    engine = make_engine(url)
    added = 0
    try:
        with make_session_factory(engine).begin() as db:
            venues = [
                _venue(db, v["name"], v["address"], v["sections"])  # type: ignore[arg-type]
                for v in DEMO_VENUES
            ]
            now = utcnow().replace(microsecond=0)
            for title, description, venue_index, day_offsets in DEMO_PERFORMANCES:
                if db.scalar(select(Performance.id).where(Performance.title == title)):
                    continue
                perf = Performance(
                    title=title, description=description, venue_id=venues[venue_index].id
                )
                db.add(perf)
                db.flush()
                for days in day_offsets:
                    # Day 0 is open for booking now; later dates open tomorrow (before they start).
                    opens = now - timedelta(minutes=5) if days == 0 else now + timedelta(days=1)
                    db.add(
                        PerformanceSession(
                            performance_id=perf.id,
                            starts_at=now + timedelta(days=days, hours=20),
                            booking_opens_at=opens,
                            queue_max_active=max_active,
                            queue_admit_per_second=admit_per_second,
                        )
                    )
                added += 1
    finally:
        engine.dispose()
    return added
