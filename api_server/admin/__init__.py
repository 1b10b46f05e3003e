"""Admin API: creating venues (with their seat maps), performances and sessions."""
