"""Who booked fastest in a session, read from the ``rankings`` table."""
