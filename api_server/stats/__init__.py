"""Sales statistics of a session, read from the reservation tables."""
