"""api_server: the query side (catalog, rankings, statistics) and the admin catalog API."""
