"""The gateway's store of verified access tokens is the one every service uses
(``shared/verified_tokens.py``); the gateway also records the tokens it issues
(``gateway/identity/router.py``: ``issue_guest``), which then need no verification.

Re-exported here only for ``gateway/front.py``, until it imports from ``shared``."""

from __future__ import annotations

from shared.verified_tokens import VerifiedTokens

__all__ = ["VerifiedTokens"]
