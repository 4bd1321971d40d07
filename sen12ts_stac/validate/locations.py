"""Where things are: local paths and http(s) URLs, hrefs resolved against them, the catalog-root
boundary, and JSON reads that refuse oversized files and never raise (a read problem is a finding).
"""

from __future__ import annotations

import os
import posixpath
import threading
import urllib.parse
from typing import Any

from sen12ts_stac.validate.report import ERROR, Finding

MAX_JSON_BYTES = 64 << 20  # a STAC JSON file larger than this is refused, not read into memory
HTTP_TIMEOUT_S = 30.0

try:  # orjson comes with stac-geoparquet; it parses STAC JSON 3-5x faster
    import orjson as _orjson

    def loads(b: bytes) -> Any:
        return _orjson.loads(b)
except ImportError:  # pragma: no cover
    import json as _json

    def loads(b: bytes) -> Any:
        return _json.loads(b)


def is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def resolve(base: str, href: Any) -> str | None:
    """The absolute location an href points to, seen from the file ``base``: a normalised local
    path or an http(s) URL; None for an href that is not a string or has another scheme."""
    if not isinstance(href, str) or not href.strip():
        return None
    href = href.strip()
    if is_url(href):
        return _norm_url(href)
    if href.startswith("file://"):
        return os.path.normpath(urllib.parse.unquote(urllib.parse.urlsplit(href).path))
    scheme = urllib.parse.urlsplit(href).scheme
    if scheme and len(scheme) > 1:  # s3://, gs://, ... (a one-letter "scheme" is a Windows drive)
        return None
    if is_url(base):
        return _norm_url(urllib.parse.urljoin(base, href))
    if os.path.isabs(href):
        return os.path.normpath(href)
    return os.path.normpath(os.path.join(os.path.dirname(base), urllib.parse.unquote(href.split("#", 1)[0])))


def _norm_url(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    path = posixpath.normpath(p.path) if p.path else "/"
    if p.path.endswith("/") and not path.endswith("/"):
        path += "/"
    return urllib.parse.urlunsplit((p.scheme, p.netloc, path, p.query, ""))


def folder_of(where: str) -> str:
    """The folder (local) or URL prefix (ending in /) a file lives in."""
    if is_url(where):
        return where.rsplit("/", 1)[0] + "/"
    return os.path.dirname(where)


def inside(root: str, where: str) -> bool:
    """True when ``where`` lies in the folder / under the URL prefix ``root``."""
    if is_url(root) != is_url(where):
        return False
    if is_url(root):
        return where.startswith(root)
    return where == root or where.startswith(root.rstrip(os.sep) + os.sep)


_local = threading.local()


def session():
    """A requests session per thread (connection reuse for many small reads)."""
    s = getattr(_local, "session", None)
    if s is None:
        import requests
        from requests.adapters import HTTPAdapter

        s = requests.Session()
        s.mount("http://", HTTPAdapter(pool_maxsize=32, max_retries=1))
        s.mount("https://", HTTPAdapter(pool_maxsize=32, max_retries=1))
        _local.session = s
    return s


def read_bytes(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[bytes | None, str | None]:
    """(content, None) or (None, problem). Files over ``max_bytes`` are refused unread."""
    if is_url(where):
        import requests

        try:
            with session().get(where, timeout=HTTP_TIMEOUT_S, stream=True) as r:
                if r.status_code in (404, 410):
                    return None, f"no such file (HTTP {r.status_code})"
                if r.status_code != 200:
                    return None, f"HTTP {r.status_code}"
                length = r.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    return None, f"{int(length):,} bytes, over the {max_bytes:,}-byte limit for a JSON file (not read)"
                body = r.raw.read(max_bytes + 1, decode_content=True)
        except requests.RequestException as e:
            return None, f"unreachable ({type(e).__name__}: {str(e)[:120]})"
        if len(body) > max_bytes:
            return None, f"over the {max_bytes:,}-byte limit for a JSON file (not read)"
        return body, None
    try:
        with open(where, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                return None, f"{size:,} bytes, over the {max_bytes:,}-byte limit for a JSON file (not read)"
            return f.read(), None
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
        r = session().head(where, timeout=HTTP_TIMEOUT_S, allow_redirects=True)
        if r.status_code in (405, 501):  # no HEAD: ask for one byte
            r = session().get(where, timeout=HTTP_TIMEOUT_S, headers={"Range": "bytes=0-0"}, stream=True)
            r.close()
        return r.status_code in (200, 206), f"HTTP {r.status_code}"
    except requests.RequestException as e:
        return None, f"unreachable ({type(e).__name__})"


def remote_size(where: str) -> int | None:
    try:
        r = session().head(where, timeout=HTTP_TIMEOUT_S, allow_redirects=True)
        n = r.headers.get("Content-Length")
        return int(n) if r.status_code == 200 and n and n.isdigit() else None
    except Exception:
        return None
