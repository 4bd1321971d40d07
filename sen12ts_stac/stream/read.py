"""Reading COG assets: only the bands asked for, optionally a window, from a local path, over
http(s) or from an object store (GDAL's ``/vsicurl/``, ``/vsis3/``, ``/vsiaz/``, ``/vsigs/``:
range requests, header/region caching; see :mod:`sen12ts_stac.storage.raster`), with retries.

Retry policy, in two layers:

* GDAL itself retries 429/502/503/504 and timeouts ``gdal_retries`` times, ``gdal_retry_delay``
  seconds apart (``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY``);
* around that, :func:`read_bands` retries the whole open + read ``retries`` times with
  exponential backoff and jitter when the error is transient (HTTP 429 or 5xx, timeouts,
  connection resets), after dropping GDAL's cached state for that URL (GDAL otherwise
  remembers the failure). Anything else (404, not a GeoTIFF, wrong band count) fails at once.

A failure raises :class:`AssetReadError`, whose message names the href; the loader turns it
into "raise" or "skip and count" (see ``on_error`` in :func:`~sen12ts_stac.stream.triplet_loader`).
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from sen12ts_stac.errors import SourceError
from sen12ts_stac.storage import raster as storage_raster
from sen12ts_stac.storage.read import ReadError


class AssetReadError(SourceError):
    """An asset could not be read; ``href`` is the asset, the message names it and the cause."""

    def __init__(self, href: str, reason: str, attempts: int = 1):
        self.href, self.reason, self.attempts = href, reason, attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{href}: {reason}{tries}")

    def __reduce__(self):  # picklable across worker processes
        return (AssetReadError, (self.href, self.reason, self.attempts))


@dataclass(frozen=True)
class ReadOptions:
    """How assets are read. ``retries``: our own attempts after the first (exponential backoff
    from ``backoff`` seconds, capped at ``max_backoff``, with jitter); ``gdal_retries`` and
    ``gdal_retry_delay``: GDAL's retries inside one attempt; ``timeout``: seconds per HTTP
    request; ``gdal_options``: extra GDAL config options (they win over the defaults).
    ``whole_file_bytes``: a remote read of at least half of a file's bands (no window) asks for
    the file's first ``whole_file_bytes`` in the opening request
    (``GDAL_INGESTED_BYTES_AT_OPEN``), so a SEN12TS asset (at most ~5 MB) arrives in one
    round trip instead of a header request plus one per run of bands; 0 turns this off."""

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    gdal_retries: int = 3
    gdal_retry_delay: float = 0.5
    timeout: int = 30
    gdal_options: tuple[tuple[str, str], ...] = ()
    whole_file_bytes: int = 16 << 20

    def env(self) -> dict:
        opts = storage_raster.gdal_options()
        opts.update(
            {
                "GDAL_HTTP_MAX_RETRY": str(self.gdal_retries),
                "GDAL_HTTP_RETRY_DELAY": str(self.gdal_retry_delay),
                "GDAL_HTTP_TIMEOUT": str(self.timeout),
                "GDAL_HTTP_CONNECTTIMEOUT": str(min(self.timeout, 10)),
            }
        )
        opts.update(dict(self.gdal_options))
        return opts


_TRANSIENT = re.compile(
    r"HTTP response code: (429|5\d\d)|timed? ?out|timeout|Connection (reset|refused|was reset)|"
    r"Couldn't connect|Recv failure|Send failure|transfer closed|Empty reply|SSL|"
    r"Operation too slow|Failed to connect|Could not resolve|"
    # a remote body cut off mid-way: GDAL's object-store readers only say the read failed
    r"Read failed|IO error|HTTP error code: (429|5\d\d)",
    re.IGNORECASE,
)


def _read_whole(href: str, indexes, window, options: "ReadOptions", expect_count, out) -> np.ndarray:
    """Read from one whole-file GET into memory, for plain http hosts that refuse ranges or send
    chunked bodies (our files are a few MB); capped and with an overall deadline."""
    try:
        with storage_raster.open_whole(href, timeout=options.timeout) as ds:
            _check_count(href, ds, indexes, expect_count)
            return ds.read(list(indexes), window=window, out=out)
    except ReadError as e:
        raise AssetReadError(href, f"whole-file read (the server refuses ranges) failed: {e}") from None
    except RasterioError as e:
        raise AssetReadError(href, " ".join(str(e).split())) from None


def _check_count(href: str, ds, indexes, expect_count) -> None:
    if expect_count is not None and ds.count != expect_count:
        raise AssetReadError(href, f"has {ds.count} bands, the catalog lists {expect_count}")
    if max(indexes) > ds.count:
        raise AssetReadError(href, f"has {ds.count} bands, band {max(indexes)} was asked for")


def is_transient(message: str) -> bool:
    """True for errors worth retrying: HTTP 429/5xx, timeouts, dropped connections."""
    return bool(_TRANSIENT.search(message))


_ENV = threading.local()


def _env(options: ReadOptions):
    """The GDAL environment for a read. In worker threads: one rasterio environment per thread
    (rasterio keeps config options thread-local there), entered once and reused by every read
    of that thread. In the main thread (where rasterio would set the options process-wide):
    a fresh environment per read, left again afterwards."""
    if threading.current_thread() is threading.main_thread():
        return rasterio.Env(**options.env())
    env = getattr(_ENV, "env", None)
    if env is None or _ENV.options != options:
        if env is not None:
            env.__exit__(None, None, None)
        env = rasterio.Env(**options.env())
        env.__enter__()
        _ENV.env, _ENV.options = env, options
    return contextlib.nullcontext()


def read_bands(
    href: str,
    indexes: list[int] | tuple[int, ...],
    *,
    window: Window | None = None,
    options: ReadOptions = ReadOptions(),
    expect_count: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Read bands ``indexes`` (1-based, file order) of the raster at ``href``, optionally only
    ``window``. Returns ``(array [len(indexes), H, W] in the file's dtype, retries used)``.
    ``expect_count`` checks the file has that many bands (a catalog/file mismatch is an error,
    not a silent wrong read). Raises :class:`AssetReadError`."""
    path = storage_raster.gdal_path(href)
    remote = path.startswith("/vsi")  # http(s) and object stores
    whole = (
        remote
        and window is None
        and options.whole_file_bytes > 0
        and expect_count is not None
        and 2 * len(indexes) >= expect_count
    )
    attempt = 0
    while True:
        try:
            # whole: one request for the file (a nested Env only for this open; ~50 us)
            ingest = (
                rasterio.Env(GDAL_INGESTED_BYTES_AT_OPEN=str(options.whole_file_bytes))
                if whole
                else contextlib.nullcontext()
            )
            with _env(options), ingest, rasterio.open(path) as ds:
                _check_count(href, ds, indexes, expect_count)
                data = ds.read(list(indexes), window=window, out=out)
            return data, attempt
        except AssetReadError:
            raise
        except (RasterioError, OSError, MemoryError) as e:
            message = " ".join(str(e).split()) or type(e).__name__
            if storage_raster.refuses_ranges(href, message):
                return _read_whole(href, indexes, window, options, expect_count, out), attempt
            if not remote or not is_transient(message) or attempt >= options.retries:
                raise AssetReadError(href, message, attempt + 1) from None
            storage_raster.forget(path)
            delay = min(options.max_backoff, options.backoff * (2**attempt))
            time.sleep(delay * (0.5 + random.random()))
            attempt += 1
