"""Shared fixtures: a small catalog made by the real ``create``, the offline schema cache, and a
loopback HTTP server. Tests never reach the outside network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.distribute.httpserve import RangeHandler, start_server

REPO = Path(__file__).resolve().parents[1]
# The STAC schema cache: ../shared/stac-schemas beside the checkout (CI and developers), or
# wherever SEN12TS_SCHEMAS points.
SCHEMAS = Path(os.environ.get("SEN12TS_SCHEMAS", REPO.parent / "shared" / "stac-schemas"))


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    if not SCHEMAS.is_dir():
        pytest.fail(f"STAC schema cache not found at {SCHEMAS}; set SEN12TS_SCHEMAS")
    return SCHEMAS


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory) -> Path:
    """A catalog root holding California, 6 tiles, summer and fall (about 20 triplets).
    Session-scoped and shared: tests must not modify it (copy it first)."""
    root = tmp_path_factory.mktemp("catalogs")
    create(CreateConfig(aoi="california", out=root, max_tiles=6, seasons=("summer", "fall"), seed=0), progress=False)
    return root


@pytest.fixture
def serve_dir():
    """``serve_dir(path, handler=RangeHandler) -> base URL``: serve a folder over HTTP on 127.0.0.1
    with Range requests and CORS. Servers stop after the test."""
    servers = []

    def start(path: Path, handler=RangeHandler) -> str:
        httpd = start_server(path, handler=handler)
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 (tests/objectstores.py: S3Server). Make a bucket per test."""
    from objectstores import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def azurite():
    """Azurite's blob service on 127.0.0.1 (tests/objectstores.py: AzuriteServer), installed by
    scripts/azurite.sh if need be; skips only when Node.js/npm is absent. A container per test."""
    from objectstores import azurite_available, azurite_server

    why = azurite_available()
    if why:
        pytest.skip(why)
    with azurite_server() as server:
        yield server
