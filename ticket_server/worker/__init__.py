"""The worker: drains the per-session reservation event streams into the database."""
