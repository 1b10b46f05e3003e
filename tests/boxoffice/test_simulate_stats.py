"""The simulator's arithmetic: percentiles, Kendall tau, admission fairness, peak overlap,
seat choice, sections, oversold detection."""

from __future__ import annotations

import dataclasses
import random

import pytest

from boxoffice.simulate.catalog import row_names, sections_for
from boxoffice.simulate.stats import (
    admission_fairness,
    kendall_tau,
    max_overlap,
    percentile,
    summarize,
)
from boxoffice.simulate.user import Person, choose_seats
from boxoffice.simulate.verify import oversold_seats


class TestPercentiles:
    def test_interpolates(self) -> None:
        assert percentile([1, 2, 3, 4], 50) == 2.5
        assert percentile([10], 99) == 10.0
        assert percentile([], 50) is None

    def test_summary(self) -> None:
        s = summarize(list(range(1, 101)))
        assert s["count"] == 100
        assert s["p99"] == pytest.approx(99.01)
        assert s["max"] == 100


class TestKendallTau:
    def test_identical_and_reversed(self) -> None:
        assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
        assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)

    def test_one_swap(self) -> None:
        # 6 pairs, one discordant: (5 - 1) / 6.
        assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)


class TestAdmissionFairness:
    def test_in_order_is_one(self) -> None:
        f = admission_fairness([1, 2, 3], [(0.0, 0.1), (0.2, 0.3), (0.4, 0.5)])
        assert (f.tau, f.discordant, f.known_pairs) == (1.0, 0, 3)

    def test_proven_inversion_is_counted(self) -> None:
        # Position 2 was admitted (window ended) before position 1's window began.
        f = admission_fairness([1, 2], [(0.5, 0.6), (0.0, 0.1)])
        assert f.discordant == 1
        assert f.tau == -1.0

    def test_overlapping_windows_are_not_judged(self) -> None:
        f = admission_fairness([2, 1], [(0.0, 1.0), (0.5, 1.5)])
        assert f.known_pairs == 0
        assert f.tau is None


def test_max_overlap_half_open() -> None:
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 3), (1, 2), (1.5, 4)]) == 3
    assert max_overlap([]) == 0


class TestSeatsAndSections:
    @pytest.mark.parametrize("seats", [1, 24, 25, 26, 100, 1000, 1013])
    def test_sections_total(self, seats: int) -> None:
        sections = sections_for(seats)
        total = sum(len(s["rows"]) * s["seats_per_row"] for s in sections)
        assert total == seats
        rows = [r for s in sections for r in s["rows"]]
        assert len(rows) == len(set(rows))

    def test_row_names(self) -> None:
        assert row_names(28)[:3] == ["A", "B", "C"]
        assert row_names(28)[25:] == ["Z", "AA", "AB"]

    def test_choose_adjacent(self) -> None:
        seats = [
            {"seat_id": i, "label": f"A-{i}", "status": "sold" if i in (2, 3) else "available"}
            for i in range(1, 8)
        ]
        picked = choose_seats(seats, 3, random.Random(1))
        assert sorted(picked) in ([4, 5, 6], [5, 6, 7])

    def test_choose_takes_what_is_left(self) -> None:
        seats = [{"seat_id": 1, "label": "A-1", "status": "available"}]
        assert choose_seats(seats, 4, random.Random(1)) == [1]
        assert choose_seats([{**seats[0], "status": "held"}], 2, random.Random(1)) == []


class TestOversold:
    @staticmethod
    def _person(i: int, seats: list[int], created: str, cancel: float | None = None) -> Person:
        p = Person(index=i, base_url="", nickname=str(i))
        p.reservation = {"seat_ids": seats, "created_at": created}
        if cancel is not None:
            p.cancelled, p.cancel_sent = True, cancel
        return p

    def test_two_live_sales_of_a_seat(self) -> None:
        a = self._person(1, [1, 2], "2026-01-01T00:00:00+00:00")
        b = self._person(2, [2], "2026-01-01T00:00:01+00:00")
        assert oversold_seats([a, b]) == 1

    def test_resale_after_cancel_is_fine(self) -> None:
        t = 1767225600.0  # 2026-01-01T00:00:00Z
        a = self._person(1, [1], "2026-01-01T00:00:00+00:00", cancel=t + 1)
        b = self._person(2, [1], "2026-01-01T00:00:02+00:00")
        assert oversold_seats([a, b]) == 0


class TestOptions:
    def test_cli_flags_reach_the_options(self) -> None:
        from boxoffice.cli import build_parser
        from boxoffice.simulate.options import from_args, validate

        args = build_parser().parse_args(
            ["simulate", "--users", "300", "--seats", "100", "--gateways", "2", "--wait", "sse"]
        )
        options = from_args(args)
        assert (options.users, options.seats, options.gateways) == (300, 100, 2)
        assert options.wait_mode == "sse"
        assert validate(options) == []

    def test_invalid_combinations(self) -> None:
        from boxoffice.simulate.options import SimOptions, validate

        assert validate(SimOptions(users=0))
        assert validate(SimOptions(url=["http://x"], gateways=2))
        assert validate(SimOptions(cancel_rate=1.5))

    def test_the_cli_parser_does_not_import_the_simulator(self) -> None:
        import subprocess
        import sys

        code = (
            "import sys; from boxoffice.cli import build_parser; build_parser(); "
            "print(any(m.startswith(('boxoffice.simulate.runner', 'rich', 'matplotlib')) "
            "for m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "False"


def test_queue_gauges_from_prometheus_text() -> None:
    from boxoffice.simulate.probes import queue_gauges

    text = (
        "# HELP boxoffice_queue_waiting Users waiting.\n"
        'boxoffice_queue_waiting{session="7"} 4213.0\n'
        'boxoffice_queue_waiting{session="17"} 9.0\n'
        'boxoffice_queue_admitted{session="7"} 200.0\n'
    )
    assert queue_gauges(text, 7) == {"server_waiting": 4213, "server_admitted": 200}
    assert queue_gauges(text, 8) == {"server_waiting": None, "server_admitted": None}


def test_sell_out_times_leave_the_people_as_they_were() -> None:
    from boxoffice.simulate.analysis import sell_out_times

    t0 = 1_700_000_000.0
    people = [
        Person(index=i, base_url="", nickname=f"p{i}", reservation=r)
        for i, r in enumerate(
            [
                {"seat_ids": [1], "completion_ms": 1500},
                {"seat_ids": [2, 3], "completion_ms": 2500},
                {"seat_ids": [4], "completion_ms": 4000},
            ]
        )
    ]
    people[0].cancelled, people[0].cancel_sent = True, t0 + 3.0  # wall clock
    before = [dataclasses.replace(p) for p in people]
    # Capacity 3: reached at 2.5 s, lost at 3.0 s (the cancel), reached again at 4.0 s.
    assert sell_out_times(people, 3, t0) == (2.5, 4.0)
    assert people == before
