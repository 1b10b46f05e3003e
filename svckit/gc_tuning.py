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


# CPython's default third threshold is 10: a full pass may run after every 10 passes of the
# middle generation (once the objects promoted since the last one reach a quarter of the
# old generation).
FULL_PASS_EVERY = 1000


def space_full_collections(every: int = FULL_PASS_EVERY) -> None:
    """Allow a full collection at most once per ``every`` middle-generation passes. For a
    process holding many long-lived connections (a gateway's SSE streams): each full pass
    walks every one of them, and the objects a fan-out to all of them promotes trigger
    one after a few passes; the younger generations still collect young cycles."""
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, every)
