"""Seat holds: all-or-nothing, per-user limited, expiring by Redis server time."""
