"""Where things are: local paths, http(s) and object-store URLs (through
:mod:`sen12ts_stac.storage`), hrefs resolved against them, the catalog-root boundary, and JSON
reads that refuse oversized files and never raise (a read problem is a finding).
"""

from __future__ import annotations

import os
from typing import Any

from sen12ts_stac.storage import read as storage_read
from sen12ts_stac.storage.http import MAX_JSON_BYTES
from sen12ts_stac.storage.locations import folder_of, inside, is_url, resolve
from sen12ts_stac.validate.report import ERROR, Finding

__all__ = [
    "MAX_JSON_BYTES",
    "exists",
    "folder_of",
    "inside",
    "is_url",
    "loads",
    "read_json",
    "remote_size",
    "resolve",
]

HTTP_TIMEOUT_S = 30.0

try:  # orjson comes with stac-geoparquet; it parses STAC JSON 3-5x faster
    import orjson as _orjson

    def loads(b: bytes) -> Any:
        return _orjson.loads(b)
except ImportError:  # pragma: no cover
    import json as _json

    def loads(b: bytes) -> Any:
        return _json.loads(b)


def read_json(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, Finding | None]:
    """(object, None) or (None, a ``read`` error naming the file and the problem)."""
    obj, _, problem = read_json_at(where, max_bytes)
    return obj, problem


def read_json_at(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, str, Finding | None]:
    """(object, where it really is, None) or (None, ``where``, a ``read`` error): over http the
    final URL after redirects, which the document's relative hrefs resolve against."""
    try:
        got = storage_read.read_bytes(where, max_bytes, timeout=HTTP_TIMEOUT_S)
    except storage_read.ReadError as e:
        return None, where, Finding(ERROR, "read", where, str(e))
    try:
        return loads(got.body), got.url, None
    except Exception as e:  # orjson.JSONDecodeError / ValueError / UnicodeDecodeError
        return None, where, Finding(ERROR, "read", where, f"malformed JSON ({str(e)[:160]})")


def exists(where: str) -> tuple[bool | None, str]:
    """(True/False, detail) for a file or URL; None when it could not be told (network error)."""
    if not is_url(where):
        return os.path.isfile(where), ""
    try:
        size = storage_read.size_of(where, timeout=HTTP_TIMEOUT_S)
    except storage_read.ReadError as e:
        return None, str(e)
    return size is not None, "" if size is not None else "no such file"


def remote_size(where: str) -> int | None:
    """The size of a remote file, None when it is missing, unreachable or not announced."""
    try:
        size = storage_read.size_of(where, timeout=HTTP_TIMEOUT_S)
    except storage_read.ReadError:
        return None
    return size if size is not None and size >= 0 else None
