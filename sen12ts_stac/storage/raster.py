"""Opening rasters from any location, in one place: GDAL reads local files, http(s) through
``/vsicurl/`` and object stores through ``/vsis3/``, ``/vsiaz/`` and ``/vsigs/`` with range
requests; this module names the file for GDAL, gives the settings that make those reads cheap
and reach the same stores as obstore does, and falls back to one capped whole-file read into
memory for plain http hosts that refuse ranges or send chunked bodies (our files are a few MB).

The streaming reader (:mod:`sen12ts_stac.stream.read`) and ``validate``'s COG probe both open
rasters through :func:`open_raster`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import os
import re
import threading
from typing import Iterator, Literal

from sen12ts_stac.storage import objects
from sen12ts_stac.storage.locations import is_http

# GDAL settings for cloud-optimised reads (all documented GDAL config options):
REMOTE_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing / sidecar probing per open
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",  # never probe .ovr/.aux.xml/.msk
    "GDAL_HTTP_MULTIRANGE": "YES",  # several byte ranges in one request where GDAL can
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",  # adjacent tiles in one range
    "VSI_CACHE": "TRUE",  # per-handle block cache of the bytes read
    "VSI_CACHE_SIZE": str(8 << 20),
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 << 20),  # process-wide region cache: headers stay warm across opens
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",  # the whole IFD of our COGs in the first request
    "GDAL_NUM_THREADS": "1",  # parallelism comes from the callers' threads
}
MAX_WHOLE_FILE_BYTES = 256 << 20  # a plain-http fallback read holds at most this much in memory

# GDAL's words for a server that answers range requests with the whole body (no Range support),
# or with a chunked body and no Content-Length (GDAL then cannot size the file)
_NO_RANGES = re.compile(
    r"Range downloading not supported|not recognized as being in a supported file format", re.IGNORECASE
)


def gdal_path(href: str) -> str:
    """What GDAL opens for ``href``: ``/vsicurl/URL`` for http(s), ``/vsis3/bucket/key`` (and
    ``/vsiaz/``, ``/vsigs/``) for object stores, the path itself otherwise."""
    if is_http(href):
        return "/vsicurl/" + href
    if objects.is_object_url(href):
        return objects.gdal_path(href)
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


def gdal_options(**extra: str) -> dict[str, str]:
    """The GDAL config options for reading rasters: :data:`REMOTE_OPTIONS`, the object-store
    settings derived from the environment (endpoint, https, path-style, anonymous), then
    ``extra`` (which wins)."""
    opts = dict(REMOTE_OPTIONS)
    opts.update(objects.gdal_options())
    opts.update(extra)
    return opts


def refuses_ranges(href: str, message: str) -> bool:
    """True when GDAL's error ``message`` for ``href`` means an http server without (usable)
    Range support: the caller then reads the whole file with :func:`open_whole`."""
    return is_http(href) and bool(_NO_RANGES.search(message))


@contextlib.contextmanager
def open_whole(href: str, *, timeout: float = 30.0) -> Iterator:
    """The raster at ``href`` read whole into memory (one capped GET with an overall deadline);
    raises :class:`~sen12ts_stac.storage.read.ReadError` or a rasterio error."""
    from rasterio.io import MemoryFile

    from sen12ts_stac.storage.read import read_bytes

    got = read_bytes(href, MAX_WHOLE_FILE_BYTES, timeout=timeout, deadline=max(4.0 * timeout, 60.0))
    with MemoryFile(got.body) as mem, mem.open() as ds:
        yield ds


@contextlib.contextmanager
def open_raster(href: str, *, timeout: float = 30.0, **options: str) -> Iterator:
    """A rasterio dataset for ``href`` (local path, http(s) or object-store URL), opened with
    :func:`gdal_options` (plus ``options``); a plain http host that refuses ranges is read whole
    instead. Errors are rasterio's (or :class:`~sen12ts_stac.storage.read.ReadError` for the
    fallback read)."""
    import rasterio
    from rasterio.errors import RasterioError

    env = gdal_options(**{"GDAL_HTTP_TIMEOUT": str(int(timeout)), **options})  # the caller's options win
    with rasterio.Env(**env):
        try:
            ds = rasterio.open(gdal_path(href))
        except RasterioError as e:
            if not refuses_ranges(href, str(e)):
                raise
            ds = None
        if ds is None:
            with open_whole(href, timeout=timeout) as whole:
                yield whole
            return
        with ds:
            yield ds


# ---------------------------------------------------------------------------------------------
# GDAL's /vsicurl/ cache: a retry after a transient failure must really ask again
# ---------------------------------------------------------------------------------------------


def _gdal_library() -> ctypes.CDLL | None:
    """The libgdal rasterio is linked against (the wheel bundles it), for
    ``VSICurlPartialClearCache``; ``None`` when it cannot be found (retries then rely on GDAL's
    own)."""
    import rasterio

    here = os.path.dirname(rasterio.__file__)
    candidates = sorted(glob.glob(os.path.join(here, "..", "rasterio.libs", "libgdal*")))
    candidates += [c for c in [ctypes.util.find_library("gdal")] if c]
    for c in candidates:
        try:
            lib = ctypes.CDLL(c)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


_GDAL: ctypes.CDLL | Literal[False] | None = None
_GDAL_LOCK = threading.Lock()


def forget(path: str) -> None:
    """Drop what GDAL caches about the remote file ``path`` (a ``/vsicurl/``, ``/vsis3/``, ...
    path: its size, existence and bytes), so the next open really asks the server again."""
    global _GDAL
    if not path.startswith("/vsi"):
        return
    with _GDAL_LOCK:
        if _GDAL is None:
            _GDAL = _gdal_library() or False
    if _GDAL:
        _GDAL.VSICurlPartialClearCache(path.encode())
