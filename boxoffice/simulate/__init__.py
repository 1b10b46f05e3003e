"""``boxoffice simulate``: an on-sale simulator that drives the public API like a crowd at the
moment booking opens and checks the invariants afterwards (nothing oversold, nothing lost, fair
admission, no 5xx), with a report of what it measured.

Only ``options`` is imported by the command line's parser; the rest (httpx, rich, matplotlib)
is imported when the command actually runs.
"""
