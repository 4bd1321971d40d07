"""The one walker of static STAC trees, for every location kind and every command.

:func:`walk` reads the entry document and every document reached from it, each at most once
(loops and repeated links are not followed), with a pool of threads, and yields what a
``visit`` hook makes of each. The hooks decide everything command-specific: which links to
follow (``visit`` returns them, already resolved), what to keep of a document (validate keeps
findings, the stream index a triplet record, download a copy plan, info counts), how to read
(``read``: the stream index reads through its HTTP cache) and what a read error becomes
(``on_error``).

Results come out in a fixed order whatever the timing: first in, first out over the order in
which links were found (breadth first), so two runs over the same tree yield the same sequence.
At most ``window`` documents are in flight, so a walk over 250k items never holds more than a
few of them in memory.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from typing import Any, Callable, Iterable, Iterator, TypeVar

import orjson

from sen12ts_stac.storage.http import MAX_JSON_BYTES
from sen12ts_stac.storage.locations import is_url, origin, resolve
from sen12ts_stac.storage.read import ReadError, read_bytes

R = TypeVar("R")
Visit = Callable[[str, Any], tuple[R, Iterable[str]]]


class DocumentError(ReadError):
    """A document could not be read or is not a JSON object; ``where`` names it."""

    def __init__(self, where: str, reason: str, missing: bool = False):
        super().__init__(reason, missing=missing)
        self.where = where

    def line(self) -> str:
        return f"{self.where}: {self}"


def read_document(where: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[dict, str]:
    """``(JSON object, final location)`` of the document at ``where`` (any location kind;
    http redirects followed: hrefs inside resolve against the final location). Raises
    :class:`DocumentError`."""
    try:
        got = read_bytes(where, max_bytes)
    except ReadError as e:
        raise DocumentError(where, str(e), e.missing) from None
    try:
        obj = orjson.loads(got.body)
    except orjson.JSONDecodeError as e:
        raise DocumentError(where, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise DocumentError(where, f"expected a JSON object, got {type(obj).__name__}")
    return obj, got.url


def link_targets(obj: dict, where: str, rels: tuple[str, ...] = ("child", "item")) -> list[str]:
    """The resolved locations of ``obj``'s links with one of ``rels``, in link order; links that
    are malformed or of another scheme are left out (validate reports those itself)."""
    links = obj.get("links")
    out = []
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") in rels:
            target = resolve(where, link.get("href"))
            if target is not None:
                out.append(target)
    return out


def walk(
    entry: str,
    visit: Visit[R],
    *,
    read: Callable[[str], tuple[Any, str]] = read_document,
    workers: int = 8,
    window: int | None = None,
    on_error: Callable[[str, Exception], R] | None = None,
    expand: Callable[[R], Iterable[str]] | None = None,
) -> Iterator[R]:
    """``visit(final location, document)`` for ``entry`` and every location the visits return,
    each location read once; yields the visits' results in first-found order. ``read`` and
    ``visit`` run in the pool (``workers`` threads; 1: in this thread). A read error goes to
    ``on_error(location, error)``, whose result is yielded (without it the error is raised and
    the walk stops). With ``expand``, the next locations are ``expand(result)`` instead, asked in
    the caller's thread once it has taken the result (a caller that decides what to follow from
    what it has seen so far: validate's loop and duplicate-link findings)."""
    seen = {entry}
    todo: collections.deque[str] = collections.deque([entry])
    limit = window or 4 * max(1, workers)

    def one(where: str) -> tuple[Exception | None, Any, list[str]]:
        try:
            obj, final = read(where)
        except Exception as e:  # noqa: BLE001 - handed to on_error in the caller's thread
            return e, None, []
        result, nxt = visit(final, obj)
        return None, result, list(nxt)

    def take(where: str, done: tuple[Exception | None, Any, list[str]]) -> Iterator[R]:
        error, result, nxt = done
        if error is not None:
            if on_error is None:
                raise error
            yield on_error(where, error)
            return
        yield result
        for target in expand(result) if expand is not None else nxt:
            if target not in seen:
                seen.add(target)
                todo.append(target)

    if workers <= 1:
        while todo:
            where = todo.popleft()
            yield from take(where, one(where))
        return
    inflight: collections.deque[tuple[str, cf.Future]] = collections.deque()
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sen12ts-walk")
    try:
        while todo or inflight:
            while todo and len(inflight) < limit:
                where = todo.popleft()
                inflight.append((where, pool.submit(one, where)))
            where, fut = inflight.popleft()
            yield from take(where, fut.result())
    finally:
        for _, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def walk_documents(
    entry: str,
    rels: tuple[str, ...] = ("child", "item"),
    *,
    descend: Callable[[dict], bool] | None = None,
    workers: int = 8,
) -> Iterator[tuple[str, dict]]:
    """``(location, document)`` for ``entry`` and every STAC document reached from it through
    links with one of ``rels``, staying where the entry is (a local tree follows local links
    only, a remote one links of the same origin or bucket); ``descend(document)`` False: yield
    it but do not follow its links. A document that cannot be read raises
    :class:`DocumentError`."""
    home = origin(entry) if is_url(entry) else ""

    def visit(where: str, obj: dict) -> tuple[tuple[str, dict], list[str]]:
        follow = descend is None or descend(obj)
        targets = link_targets(obj, where, rels) if follow else []
        return (where, obj), [t for t in targets if (origin(t) if is_url(t) else "") == home]

    yield from walk(entry, visit, workers=workers)
