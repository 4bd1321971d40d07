"""Where bytes live, in one place: what a location is and how hrefs resolve against it
(:mod:`.locations`), the one HTTP session, retry policy, overall deadline and capped reads
(:mod:`.http`), object stores through obstore and the matching GDAL settings (:mod:`.objects`),
reading any location (:mod:`.read`), opening rasters for GDAL from any location (:mod:`.raster`),
the one static-tree walker (:mod:`.walk`) and file checksums as STAC multihashes (:mod:`.checksums`).

This is the ground floor of the read side: it imports nothing else of sen12ts_stac.
"""

from sen12ts_stac.storage.checksums import MULTIHASHES, multihash_of, sha256_multihash
from sen12ts_stac.storage.http import MAX_JSON_BYTES, BodyTooLarge, DeadlineExceeded, capped_get, http_session
from sen12ts_stac.storage.locations import folder_of, inside, is_http, is_url, norm_url, origin, resolve
from sen12ts_stac.storage.objects import ObjectStoreError, is_object_url, set_anonymous
from sen12ts_stac.storage.raster import gdal_options, gdal_path, open_raster
from sen12ts_stac.storage.read import ReadError, open_chunks, open_seekable, read_bytes, size_of

__all__ = [
    "MAX_JSON_BYTES",
    "MULTIHASHES",
    "BodyTooLarge",
    "DeadlineExceeded",
    "ObjectStoreError",
    "ReadError",
    "capped_get",
    "folder_of",
    "gdal_options",
    "gdal_path",
    "http_session",
    "inside",
    "is_http",
    "is_object_url",
    "is_url",
    "multihash_of",
    "norm_url",
    "origin",
    "open_chunks",
    "open_raster",
    "open_seekable",
    "read_bytes",
    "resolve",
    "set_anonymous",
    "sha256_multihash",
    "size_of",
]
