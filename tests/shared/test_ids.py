"""The one id bound: its path pattern admits every id up to the bound and no longer digit
string."""

from __future__ import annotations

import re

from shared.ids import ID_PATTERN, MAX_ID


def test_pattern_and_bound_agree() -> None:
    segment = re.compile(ID_PATTERN + r"\Z")
    assert segment.match(str(MAX_ID))
    assert segment.match(str(MAX_ID + 1))  # same digits: the range check refuses it
    assert not segment.match("1" + "0" * len(str(MAX_ID)))
