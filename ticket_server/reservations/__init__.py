"""Reservations: confirming a hold (idempotent), reading, listing and cancelling."""
