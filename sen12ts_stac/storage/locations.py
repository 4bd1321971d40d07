"""What a location is (a local path, an http(s) URL or an object-store URL: ``s3://``,
``az://``, ``gs://``) and how an href resolves against the document it was found in. Resolve
against the document's *final* URL (after redirects): a catalog entry that answers 301 to
another folder has its relative links there.
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse
from typing import Any

from sen12ts_stac.storage import objects


def is_http(s: str) -> bool:
    """True for an http(s) URL."""
    return s.startswith(("http://", "https://"))


def is_url(s: str) -> bool:
    """True for a remote location: an http(s) or object-store URL (not a local path)."""
    return is_http(s) or objects.is_object_url(s)


def resolve(base: str, href: Any) -> str | None:
    """The absolute location an href points to, seen from the file ``base``: a normalised local
    path, http(s) or object-store URL; None for an href that is not a string or has another
    scheme."""
    if not isinstance(href, str) or not href.strip():
        return None
    href = href.strip()
    if is_url(href):
        return norm_url(href)
    if href.startswith("file://"):
        return os.path.normpath(urllib.parse.unquote(urllib.parse.urlsplit(href).path))
    scheme = urllib.parse.urlsplit(href).scheme
    if scheme and len(scheme) > 1:  # s3://, gs://, ... (a one-letter "scheme" is a Windows drive)
        return None
    if objects.is_object_url(base):
        return objects.join(base, href)
    if is_url(base):
        return norm_url(urllib.parse.urljoin(base, href))
    if os.path.isabs(href):
        return os.path.normpath(href)
    return os.path.normpath(os.path.join(os.path.dirname(base), urllib.parse.unquote(href.split("#", 1)[0])))


def norm_url(url: str) -> str:
    """``url`` with ``.``/``..`` segments folded and the fragment dropped."""
    p = urllib.parse.urlsplit(url)
    path = posixpath.normpath(p.path) if p.path else "/"
    if p.path.endswith("/") and not path.endswith("/"):
        path += "/"
    return urllib.parse.urlunsplit((p.scheme, p.netloc, path, p.query, ""))


def origin(url: str) -> str:
    """``scheme://host/`` (or ``scheme://bucket/``) of a URL: the boundary a remote catalog's
    links are held to, and what a redirect may not leave."""
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}/"


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
