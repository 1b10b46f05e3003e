"""Short full collections in a served process.

CPython's oldest-generation collection walks every tracked object; in a service that is
mostly the ~100k functions, classes and dicts created by importing FastAPI, pydantic,
SQLAlchemy and redis-py, and by building the app. Measured during an on-sale simulation each
such pass stalled the event loop for 100-250 ms (every request in flight waits for it).
Freezing what is alive once start-up is done takes those objects out of every later
collection (``gc.freeze``, the approach Instagram described for their Django fleet).
"""

from __future__ import annotations

import gc


def freeze_startup_heap(enabled: bool) -> int:
    """When ``enabled``: collect once, then move every surviving object to the permanent
    generation. Returns how many objects are frozen (0 when not enabled)."""
    if not enabled:
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
