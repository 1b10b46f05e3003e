"""The on-sale simulator in a small configuration, end to end: real processes (api_server,
ticket_server, a gateway, the worker) started by ``boxoffice simulate`` on free ports, on the
suite's database and Redis DB index, with short timings; 300 people race for 100 seats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from boxoffice.simulate.system import missing_pieces

ROOT = Path(__file__).resolve().parents[2]
MISSING = missing_pieces()

pytestmark = [
    # Run on standalone Redis and on a cluster (tests/conftest.py).
    pytest.mark.redis_backends,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.integration,
    # Only while a piece of the system is not in the checkout yet; never once all exist.
    pytest.mark.skipif(bool(MISSING), reason=f"not in this checkout yet: {', '.join(MISSING)}"),
]


# The pre-queue variant: 15 entrants (at most 4 seats each) leave seats for later joiners,
# whose admission order Kendall tau measures.
@pytest.mark.parametrize("pre_queue_share", [0.0, 0.05], ids=["plain", "pre-queue"])
def test_small_onsale_sells_out_fairly_and_loses_nothing(
    pre_queue_share: float,
    database_url: str,
    clean_db: Engine,
    redis_url: str,
    redis_sync: redis.Redis,  # flushes the suite's Redis DB index first
    tmp_path: Path,
) -> None:
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env.update(
        {
            "BOXOFFICE_DATABASE_URL": database_url,
            "BOXOFFICE_REDIS_URL": redis_url,
            "BOXOFFICE_DATA_DIR": str(tmp_path / "data"),
            # Fast timings: the whole sale takes seconds.
            "BOXOFFICE_HOLD_TTL_S": "15",
            "BOXOFFICE_ADMISSION_TTL_S": "30",
            "BOXOFFICE_QUEUE_HEARTBEAT_TIMEOUT_S": "6",
            "BOXOFFICE_LOG_LEVEL": "WARNING",
            # The limiter's Redis bound (0.1 s by default) can be exceeded on a loaded 2-core
            # CI box by scheduling delay alone, and ticketing writes then fail closed (503).
            # This test is about correctness, so give it room; the full-size run in
            # BENCHMARKS.md keeps the default.
            "BOXOFFICE_RATE_LIMIT": '{"redis_timeout_s": 0.5}',
        }
    )
    argv = [
        sys.executable,
        "-m",
        "boxoffice.cli",
        "simulate",
        "--users=300",
        "--seats=100",
        "--lead=3",
        "--arrival-window=0.5",
        "--duration=45",
        "--think=0.05",
        "--max-active=40",
        "--admit-per-second=200",
        "--poll-min=0.25",
        "--cancel-rate=0.2",
        "--replay-rate=0.2",
        "--drain-timeout=20",
        "--no-progress",
        f"--out={out}",
        f"--pre-queue-share={pre_queue_share}",
    ]
    try:
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=85, check=False
        )
    finally:
        # The sale leaves queue and seat keys behind; a later test's gateway would find the
        # session in Redis and ask its (mocked) api_server about it.
        redis_sync.flushdb()
    report_path = out / "report.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    failed = [row for row in report["invariants"] if not row["ok"]]
    assert not failed, (failed, report["errors"][:10], report["statuses"])
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary, verification = report["summary"], report["verification"]
    # Demand (~720 seats) far exceeds supply: capacity is reached. A cancellation after the
    # sell-out was announced may leave a seat unsold at the end; all three views agree anyway.
    # Reached as the server announced it, or as the clients' timeline shows it (which dates a
    # cancellation by its sending, so it can miss the moment: flaky alone in full CI runs).
    reached = summary["time_to_sell_out_s"], summary["sold_out_announced_s"]
    assert reached != (None, None), (summary, report["statuses"])
    assert summary["seats_sold"] >= 90
    assert verification["oversold_seats"] == 0
    assert verification["lost"] == 0
    assert verification["drained"]
    assert verification["mysql_sold"] == verification["seatmap_sold"] == summary["seats_sold"]
    assert verification["ranking_checked"] == min(100, verification["client_reservations"])
    assert report["fairness"]["kendall_tau"] == 1.0
    assert report["fairness"]["max_active_observed"] <= 40
    assert summary.get("outcome_cancelled", 0) >= 1  # P(none) ~ 0.8**45: negligible
    draw_rows = [row for row in report["invariants"] if row["name"].startswith("pre-queue")]
    assert len(draw_rows) == (4 if pre_queue_share else 0)  # and all ok (above)
    assert (out / "timeline.png").stat().st_size > 0
    assert (out / "latency.png").stat().st_size > 0
