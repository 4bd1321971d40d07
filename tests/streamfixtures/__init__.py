"""Helpers for the streaming tests: error-injecting HTTP handlers, a loopback STAC API
(``rustac serve``) loaded from a catalog, item exports (ndjson / stac-geoparquet), and the
autouse fixture that keeps the index's HTTP cache inside each test's folder."""

import pytest


@pytest.fixture(autouse=True)
def private_stream_cache(tmp_path, monkeypatch):
    """The index's HTTP cache goes to the test's folder, never to the home directory."""
    monkeypatch.setenv("SEN12TS_CACHE_DIR", str(tmp_path / "stream-cache"))
