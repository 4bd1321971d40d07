"""Where things are: local paths and http(s) URLs, hrefs resolved against them, the catalog-root
boundary, and JSON reads that refuse oversized files and never raise (a read problem is a finding).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from sen12ts_stac.storage.http import MAX_JSON_BYTES, BodyTooLarge, DeadlineExceeded, capped_get, thread_session
from sen12ts_stac.storage.locations import folder_of, inside, is_url, resolve
from sen12ts_stac.validate.report import ERROR, Finding

__all__ = ["MAX_JSON_BYTES", "exists", "folder_of", "inside", "is_url", "loads", "read_bytes", "read_json", "remote_size", "resolve"]

HTTP_TIMEOUT_S = 30.0

try:  # orjson comes with stac-geoparquet; it parses STAC JSON 3-5x faster
    import orjson as _orjson

    def loads(b: bytes) -> Any:
        return _orjson.loads(b)
except ImportError:  # pragma: no cover
    import json as _json

    def loads(b: bytes) -> Any:
        return _json.loads(b)


def read_bytes(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[bytes | None, str | None]:
    """(content, None) or (None, problem). Files over ``max_bytes`` are refused unread."""
    if is_url(where):
        import requests

        try:
            got = capped_get(where, max_bytes, timeout=HTTP_TIMEOUT_S)
        except BodyTooLarge as e:
            return None, f"{e} for a JSON file (not read)"
        except DeadlineExceeded as e:
            return None, f"unreachable ({e})"
        except requests.RequestException as e:
            return None, f"unreachable ({type(e).__name__}: {str(e)[:120]})"
        if got.status in (404, 410):
            return None, f"no such file (HTTP {got.status})"
        if got.status != 200:
            return None, f"HTTP {got.status}"
        return got.body, None
    try:
        if not stat.S_ISREG(os.stat(where).st_mode) and not os.path.isdir(where):
            return None, "not a regular file (a FIFO, device or socket is not read)"
    except FileNotFoundError:
        return None, "no such file"
    except OSError as e:
        return None, f"not readable ({e.strerror or e})"
    try:
        with open(where, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                return None, f"{size:,} bytes, over the {max_bytes:,}-byte limit for a JSON file (not read)"
            body = f.read(max_bytes + 1)
            if len(body) > max_bytes:
                return None, f"over the {max_bytes:,}-byte limit for a JSON file (not read)"
            return body, None
    except FileNotFoundError:
        return None, "no such file"
    except IsADirectoryError:
        return None, "is a folder, not a file"
    except OSError as e:
        return None, f"not readable ({e.strerror or e})"


def read_json(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, Finding | None]:
    """(object, None) or (None, a ``read`` error naming the file and the problem)."""
    body, problem = read_bytes(where, max_bytes)
    if problem is not None:
        return None, Finding(ERROR, "read", where, problem)
    try:
        return loads(body), None
    except Exception as e:  # orjson.JSONDecodeError / ValueError / UnicodeDecodeError
        return None, Finding(ERROR, "read", where, f"malformed JSON ({str(e)[:160]})")


def exists(where: str) -> tuple[bool | None, str]:
    """(True/False, detail) for a file or URL; None when it could not be told (network error)."""
    if not is_url(where):
        return os.path.isfile(where), ""
    import requests

    try:
        r = thread_session().head(where, timeout=HTTP_TIMEOUT_S, allow_redirects=True)
        if r.status_code in (405, 501):  # no HEAD: ask for one byte
            r = thread_session().get(where, timeout=HTTP_TIMEOUT_S, headers={"Range": "bytes=0-0"}, stream=True)
            r.close()
        return r.status_code in (200, 206), f"HTTP {r.status_code}"
    except requests.RequestException as e:
        return None, f"unreachable ({type(e).__name__})"


def remote_size(where: str) -> int | None:
    try:
        r = thread_session().head(where, timeout=HTTP_TIMEOUT_S, allow_redirects=True)
        n = r.headers.get("Content-Length")
        return int(n) if r.status_code == 200 and n and n.isdigit() else None
    except Exception:
        return None
