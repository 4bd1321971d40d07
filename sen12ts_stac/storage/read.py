"""Reading any location, in one place: a local file, an http(s) URL or an object-store URL.
Every read is capped (no unbounded body), non-regular local files (FIFOs, devices) are refused
unread, http reads have an overall deadline, and failures are :class:`ReadError` with a
one-line reason (``missing`` tells "there is nothing there" from "could not be read").

Pixel reads go through GDAL instead: see :mod:`sen12ts_stac.storage.raster`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator

import requests

from sen12ts_stac.storage import objects
from sen12ts_stac.storage.http import (
    CHUNK,
    DEFAULT_DEADLINE_S,
    DEFAULT_TIMEOUT_S,
    BodyTooLarge,
    DeadlineExceeded,
    capped_get,
    streamed_get,
    thread_session,
)
from sen12ts_stac.storage.locations import is_http


class ReadError(Exception):
    """A location could not be read; ``str()`` is the reason (the caller names the location)."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.missing = missing


@dataclass
class Got:
    """What a read returned: the body and where it really came from (the final URL after
    redirects; hrefs in the document resolve against it)."""

    body: bytes
    url: str


def read_bytes(
    where: str,
    max_bytes: int,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    deadline: float = DEFAULT_DEADLINE_S,
    session: requests.Session | None = None,
) -> Got:
    """The whole content of ``where``, at most ``max_bytes`` (more is refused unread)."""
    if is_http(where):
        try:
            got = capped_get(where, max_bytes, session=session, timeout=timeout, deadline=deadline)
        except BodyTooLarge as e:
            raise ReadError(f"{e} (not read)") from None
        except DeadlineExceeded as e:
            raise ReadError(f"unreachable ({e})") from None
        except requests.RequestException as e:
            raise ReadError(f"unreachable ({type(e).__name__}: {str(e)[:120]})") from None
        if got.status in (404, 410):
            raise ReadError(f"no such file (HTTP {got.status})", missing=True)
        if got.status != 200:
            raise ReadError(f"HTTP {got.status} {got.reason}".strip())
        return Got(got.body, got.url)
    if objects.is_object_url(where):
        try:
            return Got(objects.get(where, max_bytes), where)
        except objects.ObjectStoreError as e:
            raise ReadError(_without(where, str(e)), missing=e.missing) from None
    return Got(_read_local(where, max_bytes), where)


def _read_local(path: str, max_bytes: int) -> bytes:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as e:
        raise ReadError(f"not readable ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise ReadError("is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise ReadError("not a regular file (a FIFO, device or socket is not read)")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ReadError(f"{size:,} bytes, over the {max_bytes:,}-byte limit (not read)")
            body = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as e:
        raise ReadError(f"not readable ({e.strerror or e})") from None
    if len(body) > max_bytes:
        raise ReadError(f"over the {max_bytes:,}-byte limit (not read)")
    return body


def size_of(where: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> int | None:
    """The size in bytes of the file at ``where``; None when there is none (or an http server
    does not say). Raises :class:`ReadError` when it cannot be told (unreachable)."""
    if is_http(where):
        try:
            r = thread_session().head(where, timeout=timeout, allow_redirects=True)
            if r.status_code in (405, 501):  # no HEAD: ask for one byte
                with thread_session().get(where, timeout=timeout, headers={"Range": "bytes=0-0"}, stream=True) as r:
                    total = r.headers.get("Content-Range", "").rpartition("/")[2]
                    if r.status_code == 206 and total.isdigit():
                        return int(total)
            if r.status_code in (404, 410):
                return None
            if r.status_code != 200:
                raise ReadError(f"HTTP {r.status_code}")
            n = r.headers.get("Content-Length", "")
            return int(n) if n.isdigit() else -1
        except requests.RequestException as e:
            raise ReadError(f"unreachable ({type(e).__name__})") from None
    if objects.is_object_url(where):
        try:
            meta = objects.head(where)
        except objects.ObjectStoreError as e:
            raise ReadError(_without(where, str(e)), missing=e.missing) from None
        return None if meta is None else meta["size"]
    try:
        st = os.stat(where)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


@dataclass
class Stream:
    """An open file being read in chunks: its declared size (None when not announced), where it
    really is (the final URL after redirects) and the chunks, which end the read when exhausted."""

    size: int | None
    url: str
    chunks: Iterator[bytes]
    closer: Callable[[], object] | None = None

    def close(self) -> None:
        """Give the connection or file back without reading the rest."""
        if self.closer is not None:
            self.closer()


def open_chunks(
    where: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    deadline: float = DEFAULT_DEADLINE_S,
    session: requests.Session | None = None,
) -> Stream:
    """``where`` opened for a copy too large to hold in memory; the caller caps and checks what
    it reads. Over http the whole transfer has ``deadline`` seconds (iterating past it raises
    :class:`~sen12ts_stac.storage.http.DeadlineExceeded`). Raises :class:`ReadError`."""
    if is_http(where):
        stack = contextlib.ExitStack()
        try:
            r, chunks = stack.enter_context(streamed_get(where, session=session, timeout=timeout, deadline=deadline))
        except requests.RequestException as e:
            stack.close()
            raise ReadError(f"unreachable ({type(e).__name__}: {str(e)[:120]})") from None
        if r.status_code != 200:
            stack.close()
            raise ReadError(f"HTTP {r.status_code}", missing=r.status_code in (404, 410))
        length = r.headers.get("Content-Length", "")

        def http_chunks() -> Iterator[bytes]:
            with stack:
                yield from chunks

        return Stream(int(length) if length.isdigit() else None, r.url, http_chunks(), stack.close)
    if objects.is_object_url(where):
        try:
            size, chunks = objects.get_chunks(where)
        except objects.ObjectStoreError as e:
            raise ReadError(_without(where, str(e)), missing=e.missing) from None
        return Stream(size, where, chunks)
    try:
        if not stat.S_ISREG(os.stat(where).st_mode):
            raise ReadError("not a regular file (not read)")
        f = open(where, "rb")
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as e:
        raise ReadError(f"not readable ({e.strerror or e})") from None

    def file_chunks() -> Iterator[bytes]:
        with f:
            yield from iter(lambda: f.read(CHUNK), b"")

    return Stream(os.fstat(f.fileno()).st_size, where, file_chunks(), f.close)


def _without(where: str, message: str) -> str:
    """An object-store message without the URL it starts with (the caller names the location)."""
    return message[len(where) + 2 :] if message.startswith(where + ": ") else message


def open_seekable(where: str):
    """A seekable binary file object over ``where`` (for readers such as pyarrow's parquet
    reader that jump around a large file): a local file, obstore's buffered reader for object
    stores, fsspec's ranged HTTP file for http(s). Raises :class:`ReadError`."""
    if objects.is_object_url(where):
        try:
            return objects.open_reader(where)
        except objects.ObjectStoreError as e:
            raise ReadError(_without(where, str(e)), missing=e.missing) from None
    if is_http(where):
        import fsspec

        try:
            return fsspec.open(where, "rb", block_size=1 << 20).open()
        except FileNotFoundError:
            raise ReadError("no such file", missing=True) from None
        except Exception as e:  # noqa: BLE001 - fsspec/aiohttp raise many types
            raise ReadError(f"unreachable ({type(e).__name__}: {str(e)[:120]})") from None
    try:
        if not stat.S_ISREG(os.stat(where).st_mode):
            raise ReadError("not a regular file (not read)")
        return open(where, "rb")
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as e:
        raise ReadError(f"not readable ({e.strerror or e})") from None
