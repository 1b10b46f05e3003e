"""The worker's command line and its small pure helpers."""

from __future__ import annotations

import pytest

from ticket_server.worker.config import WorkerSettings
from ticket_server.worker.consumer import backoff_delay, default_consumer_name
from ticket_server.worker.main import build_parser, main


class TestCommandLine:
    def test_defaults_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BOXOFFICE_WORKER_BATCH_SIZE", "321")
        monkeypatch.setenv("BOXOFFICE_WORKER_CLAIM_IDLE_MS", "4500")
        args = build_parser(WorkerSettings()).parse_args([])
        assert (args.batch_size, args.claim_idle_ms) == (321, 4500)
        assert args.consumer == default_consumer_name()
        args = build_parser(WorkerSettings()).parse_args(["--batch-size", "9", "--consumer", "c"])
        assert (args.batch_size, args.consumer) == (9, "c")

    @pytest.mark.parametrize(
        "argv", [["--batch-size", "0"], ["--", "--max-attempts", "0"], ["--block-ms", "-1"]]
    )
    def test_nonsense_options_exit_2_before_connecting(self, argv: list[str]) -> None:
        assert main(argv) == 2

    def test_consumer_names_differ_per_process(self) -> None:
        import os
        import socket

        assert default_consumer_name() == f"{socket.gethostname()}-{os.getpid()}"


class TestBackoff:
    def test_grows_exponentially_with_jitter_up_to_the_cap(self) -> None:
        for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 5.0), (500, 5.0)]:
            delays = [backoff_delay(attempt, 0.1, 5.0) for _ in range(200)]
            assert all(ceiling / 2 <= d <= ceiling for d in delays)
            assert max(delays) - min(delays) > ceiling / 10  # jittered, not lockstep
