"""Reading the JSON documents of a catalog: local files and object stores through the storage
layer, http(s) through an on-disk conditional-request cache (SQLite, keyed by URL, revalidated
with ETag / Last-Modified after a TTL), each document read at most once per index run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import requests

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.storage import (
    MAX_JSON_BYTES,
    BodyTooLarge,
    DeadlineExceeded,
    ReadError,
    capped_get,
    http_session,
    is_http,
    is_url,
    read_bytes,
)

DEFAULT_CACHE_TTL = 3600.0
DEFAULT_CONCURRENCY = 16  # documents read at once


def default_cache_dir() -> Path:
    """``$SEN12TS_CACHE_DIR``, else ``$XDG_CACHE_HOME/sen12ts-stac``, else ``~/.cache/sen12ts-stac``."""
    if os.environ.get("SEN12TS_CACHE_DIR"):
        return Path(os.environ["SEN12TS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sen12ts-stac"


class HttpCache:
    """URL -> (ETag, Last-Modified, fetched-at, body) in one SQLite file, shared by threads (one
    connection behind a lock) and by processes (SQLite's own locking, WAL journal)."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / "stac-http-cache.sqlite"
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS docs (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, fetched REAL, "
                "body BLOB)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as e:
            raise UserError(f"{folder}: cannot use as the STAC HTTP cache ({e})") from None
        self._lock = threading.Lock()
        self._pending = 0

    def get(self, url: str) -> tuple[str | None, str | None, float, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT etag, last_modified, fetched, body FROM docs WHERE url = ?", (url,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], bytes(row[3]))

    def put(self, url: str, etag: str | None, last_modified: str | None, body: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?)", (url, etag, last_modified, time.time(), body)
            )
            self._pending += 1
            if self._pending >= 500:
                self._db.commit()
                self._pending = 0

    def touch(self, url: str) -> None:
        with self._lock:
            self._db.execute("UPDATE docs SET fetched = ? WHERE url = ?", (time.time(), url))
            self._pending += 1

    def close(self) -> None:
        with self._lock:
            try:
                self._db.commit()
                self._db.close()
            except sqlite3.Error:
                pass


@dataclass
class FetchStats:
    """What one index run cost: documents read, HTTP requests, answers served by the cache."""

    documents: int = 0
    requests: int = 0
    not_modified: int = 0
    cache_hits: int = 0

    def add(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self, k, getattr(self, k) + v)


class Fetcher:
    """Reads JSON documents from local paths or URLs; remembers every document for the life of
    the object (so a document is read at most once per index run) and, for URLs, goes through
    an :class:`HttpCache`."""

    def __init__(
        self,
        cache: HttpCache | None = None,
        ttl: float = DEFAULT_CACHE_TTL,
        timeout: float = 30.0,
        retries: int = 5,
        pool: int = DEFAULT_CONCURRENCY,
        deadline: float = 120.0,
    ):
        self.cache, self.ttl, self.timeout, self.retries, self.pool = cache, ttl, timeout, retries, pool
        self.deadline = deadline
        self.stats = FetchStats()
        self._memo: dict[str, dict] = {}
        self._final: dict[str, str] = {}  # asked-for URL -> final URL after redirects
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = http_session(self.retries, self.pool)
        return s

    def get_json(self, loc: str) -> dict:
        """The document at ``loc``. Catalogs and collections are remembered; items are not (they
        are read once, and a walk of 250k items must not keep them all in memory)."""
        with self._lock:
            if loc in self._memo:
                return self._memo[loc]
        obj = self._read(loc)
        with self._lock:
            if obj.get("type") != "Feature":
                self._memo[loc] = obj
            self.stats.add(documents=1)
        return obj

    def final_url(self, loc: str) -> str:
        """Where the document asked for at ``loc`` really is (after redirects): hrefs in it
        resolve against this."""
        with self._lock:
            return self._final.get(loc, loc)

    def _read(self, loc: str) -> dict:
        if not is_http(loc):  # local files and object stores: no HTTP cache
            try:
                return _parse(read_bytes(loc, MAX_JSON_BYTES).body, loc)
            except ReadError as e:
                raise (UserError if not is_url(loc) or e.missing else SourceError)(f"{loc}: {e}") from None
        cached = self.cache.get(loc) if self.cache is not None else None
        headers = {"Accept": "application/json, application/geo+json;q=0.9, */*;q=0.5"}
        if cached is not None:
            etag, modified, fetched, body = cached
            if time.time() - fetched < self.ttl:
                with self._lock:
                    self.stats.add(cache_hits=1)
                return _parse(body, loc)
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
        try:
            r = capped_get(
                loc,
                MAX_JSON_BYTES,
                session=self._session(),
                headers=headers,
                timeout=self.timeout,
                deadline=self.deadline,
            )
        except (BodyTooLarge, DeadlineExceeded) as e:
            raise SourceError(f"{loc}: {e}") from None
        except requests.RequestException as e:
            raise SourceError(f"{loc}: request failed ({_short(e)})") from None
        with self._lock:
            self.stats.add(requests=1)
            if r.url != loc:
                self._final[loc] = r.url
        if r.status == 304 and cached is not None:
            with self._lock:
                self.stats.add(not_modified=1)
            assert self.cache is not None  # cached came from it
            self.cache.touch(loc)
            return _parse(cached[3], loc)
        if r.status != 200:
            raise SourceError(f"{loc}: HTTP {r.status} {r.reason}")
        obj = _parse(r.body, loc)
        if self.cache is not None and r.url == loc:  # a redirected answer is not cached: its final URL is the base
            self.cache.put(loc, r.headers.get("ETag"), r.headers.get("Last-Modified"), r.body)
        return obj


def _parse(body: bytes, loc: str) -> dict:
    try:
        obj = orjson.loads(body)
    except ValueError as e:
        raise UserError(f"{loc}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{loc}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _short(e: BaseException) -> str:
    text = str(e)
    m = re.search(r"\(Caused by (.*)\)\)?$", text)
    return (m.group(1) if m else text)[:200]
