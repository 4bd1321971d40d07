"""One module per catalog form, behind one small interface: ``records(location, filt, opts,
fetcher) -> list[TripletRecord]`` (``fetcher`` only where documents are read one by one):

* :mod:`.static` - a static catalog: local folder, http(s) or object-store URL;
* :mod:`.api` - a STAC API (pystac-client);
* :mod:`.mlhub` - an MLHub-style API (radiant-mlhub client);
* :mod:`.parquet` - a stac-geoparquet file.

:func:`sen12ts_stac.stream.index.load_index` picks one (``detect``) and sorts what it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sen12ts_stac.stream.fetch import DEFAULT_CACHE_TTL, DEFAULT_CONCURRENCY

__all__ = ["DEFAULT_CACHE_TTL", "DEFAULT_CONCURRENCY", "IndexOptions"]


@dataclass
class IndexOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    cache: bool = True
    cache_dir: str | os.PathLike | None = None
    cache_ttl: float = DEFAULT_CACHE_TTL
    timeout: float = 30.0
    retries: int = 5
    page_size: int = 500
    api_key: str | None = None
    progress: bool | None = None
    base_href: str | None = None
    allow_outside_root: bool = False
