"""Helpers for the streaming tests: error-injecting HTTP handlers, a loopback STAC API
(``rustac serve``) loaded from a catalog, and item exports (ndjson / stac-geoparquet)."""
