"""Policies: defaults, merging settings over them, scaling for the local fallback."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.ratelimit.policies import FailureMode, Policy, RateLimitSettings


class TestDefaults:
    def test_browsing_falls_back_locally_and_ticketing_writes_close(self) -> None:
        s = RateLimitSettings()
        assert s.policies["browse"].failure_mode is FailureMode.LOCAL
        assert s.policies["ticketing-write"].failure_mode is FailureMode.CLOSED
        assert {"browse", "queue", "auth", "ticketing-write", "default"} <= set(s.policies)

    def test_unknown_group_uses_default(self) -> None:
        s = RateLimitSettings()
        assert s.policy_for("no-such-group") == ("default", s.policies["default"])
        assert s.policy_for("browse")[0] == "browse"


class TestMerge:
    def test_given_fields_override_only_themselves(self) -> None:
        s = RateLimitSettings.model_validate({"policies": {"browse": {"rate": 3}}})
        default = RateLimitSettings().policies["browse"]
        assert s.policies["browse"].rate == 3
        assert s.policies["browse"].burst == default.burst
        assert s.policies["ticketing-write"] == RateLimitSettings().policies["ticketing-write"]

    def test_new_policy_needs_rate_and_burst(self) -> None:
        with pytest.raises(ValidationError):
            RateLimitSettings.model_validate({"policies": {"new": {"rate": 3}}})
        s = RateLimitSettings.model_validate(
            {"policies": {"new": {"rate": 3, "burst": 1, "failure_mode": "open"}}}
        )
        assert s.policies["new"].failure_mode is FailureMode.OPEN

    def test_from_environment_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pydantic_settings import BaseSettings, SettingsConfigDict

        class S(BaseSettings):
            model_config = SettingsConfigDict(env_prefix="BOXOFFICE_")
            rate_limit: RateLimitSettings = RateLimitSettings()

        monkeypatch.setenv(
            "BOXOFFICE_RATE_LIMIT", '{"policies": {"browse": {"failure_mode": "closed"}}}'
        )
        assert S().rate_limit.policies["browse"].failure_mode is FailureMode.CLOSED

    @pytest.mark.parametrize(
        "bad",
        [
            {"policies": {"browse": {"rate": 0}}},
            {"policies": {"browse": {"burst": 0}}},
            {"policies": {"browse": {"failure_mode": "maybe"}}},
            {"heartbeat_interval_s": 5, "instance_window_s": 1},
            {"redis_batch_window_ms": -1},
            {"redis_batch_window_ms": 50},  # past 10 ms the wait would be felt
            {"redis_batch_window_ms": "soon"},
        ],
    )
    def test_rejects_nonsense(self, bad: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            RateLimitSettings.model_validate(bad)


class TestPolicy:
    def test_interval_is_period_over_rate_in_microseconds(self) -> None:
        assert Policy(rate=100, burst=1).interval_us == 10_000
        assert Policy(rate=30, period_s=60, burst=1).interval_us == 2_000_000

    @pytest.mark.parametrize(
        ("instances", "rate", "burst"), [(1, 10, 5), (2, 5, 3), (3, 10 / 3, 2), (10, 1, 1)]
    )
    def test_scaled_share(self, instances: int, rate: float, burst: int) -> None:
        share = Policy(rate=10, burst=5).scaled(instances)
        assert share.rate == pytest.approx(rate)
        assert share.burst == burst
