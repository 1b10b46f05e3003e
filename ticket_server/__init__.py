"""ticket_server: seat map, holds, reservations (Redis) and the worker that persists them."""
