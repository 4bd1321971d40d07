"""The one HTTP client of the toolkit: a requests session with one retry policy (429/5xx and
connection errors, exponential backoff honouring ``Retry-After``), and capped reads with an
overall deadline per request (a server sending one byte every few seconds never passes a
per-read timeout, so the whole body has its own clock), never an unbounded body.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

USER_AGENT = "sen12ts-stac"
DEFAULT_TIMEOUT_S = 30.0  # connect / between bytes
DEFAULT_DEADLINE_S = 120.0  # a whole request, body included
DEFAULT_RETRIES = 5
CHUNK = 1 << 16
MAX_JSON_BYTES = 64 << 20  # a STAC JSON document larger than this is refused, not read into memory


class BodyTooLarge(Exception):
    """A response body (or its announced Content-Length) is over the cap of the read."""


class DeadlineExceeded(Exception):
    """A request took longer than its overall deadline."""


RETRY_STATUS = (429, 500, 502, 503, 504)


def retry_policy(
    retries: int = DEFAULT_RETRIES, *, backoff: float = 0.3, connect: int | None = None, raise_on_status: bool = False
) -> Retry:
    """The one retry policy (urllib3): 429/5xx and connection errors retried with exponential
    backoff from ``backoff`` seconds (at most 10 s apart), honouring ``Retry-After``.
    ``connect`` limits retries of connection errors (no network fails fast); clients that want
    the last bad status raised (pystac-client) set ``raise_on_status``."""
    return Retry(
        total=retries,
        connect=retries if connect is None else connect,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        backoff_max=10,
        status_forcelist=RETRY_STATUS,
        allowed_methods=("GET", "HEAD", "POST"),
        respect_retry_after_header=True,
        raise_on_status=raise_on_status,
    )


def http_session(retries: int = DEFAULT_RETRIES, pool: int = 16) -> requests.Session:
    """A requests session with :func:`retry_policy`; status codes are left to the caller."""
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries), pool_connections=4, pool_maxsize=max(pool, 4))
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


_local = threading.local()


def thread_session() -> requests.Session:
    """This thread's session (requests sessions are not thread-safe; connections are reused)."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = http_session()
    return s


@dataclass
class Fetched:
    """A finished GET: the status, the final URL after redirects, the headers and the body."""

    status: int
    url: str
    headers: dict
    body: bytes
    reason: str = ""


@contextlib.contextmanager
def streamed_get(
    url: str,
    *,
    session: requests.Session | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    deadline: float = DEFAULT_DEADLINE_S,
    headers: dict | None = None,
) -> Iterator[tuple[requests.Response, Iterator[bytes]]]:
    """GET ``url`` as a stream: ``(response, chunks)``, where iterating ``chunks`` raises
    :class:`DeadlineExceeded` once ``deadline`` seconds have passed since the request began (a
    timer shuts the socket, so even a server that trickles a byte every few seconds is stopped).
    The caller caps what it keeps and checks the status."""
    s = session or thread_session()
    start = time.monotonic()
    expired = threading.Event()
    with s.get(url, timeout=timeout, stream=True, headers=headers) as r:

        def expire() -> None:  # a blocked read only wakes when its connection is shut
            expired.set()
            _shut(r)

        timer = threading.Timer(max(0.0, deadline - (time.monotonic() - start)), expire)
        timer.daemon = True
        timer.start()

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in r.iter_content(CHUNK):
                    if expired.is_set():
                        break
                    yield chunk
            except (requests.RequestException, OSError, ValueError, AttributeError):
                if expired.is_set():
                    raise DeadlineExceeded(f"no complete answer within {deadline:g} s") from None
                raise
            if expired.is_set():
                raise DeadlineExceeded(f"no complete answer within {deadline:g} s")

        try:
            yield r, chunks()
        finally:
            timer.cancel()


def capped_get(
    url: str,
    max_bytes: int,
    *,
    session: requests.Session | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    deadline: float = DEFAULT_DEADLINE_S,
    headers: dict | None = None,
) -> Fetched:
    """GET ``url`` and read at most ``max_bytes`` of body within ``deadline`` seconds overall.
    Raises :class:`BodyTooLarge`, :class:`DeadlineExceeded` or ``requests.RequestException``.
    A non-200 status is returned with an empty body (its body is not read)."""
    with streamed_get(url, session=session, timeout=timeout, deadline=deadline, headers=headers) as (r, chunks):
        if r.status_code != 200:
            return Fetched(r.status_code, r.url, dict(r.headers), b"", r.reason or "")
        length = r.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise BodyTooLarge(f"{int(length):,} bytes, over the {max_bytes:,}-byte limit")
        parts, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"over the {max_bytes:,}-byte limit")
            parts.append(chunk)
        return Fetched(r.status_code, r.url, dict(r.headers), b"".join(parts), r.reason or "")


def _shut(r: requests.Response) -> None:
    """Shut the socket under a streaming response, from another thread."""
    import socket

    try:
        sock = r.raw._fp.fp.raw._sock  # urllib3 HTTPResponse -> http.client -> SocketIO -> socket
        sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - already closed, or another transport: close what we can
        try:
            r.raw.close()
        except Exception:  # noqa: BLE001
            pass
