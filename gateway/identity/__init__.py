"""Guest identities: ``POST /api/auth/guest`` issues access tokens."""
