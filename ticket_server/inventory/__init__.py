"""The live seat map of a session: loaded from the catalog once, then kept in Redis."""
