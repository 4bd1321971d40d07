"""Static catalogs (a local folder, an http(s) URL or an object-store URL): the storage walker
follows ``child``/``item`` links concurrently, descending only into triplet collections (and,
with filters, only into the wanted AOIs and blocks); the S1/S2/label collections are read for
their statistics but their items are not. A local catalog may not point outside its root.
"""

from __future__ import annotations

import os
import re
import sys

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.spec.vocabulary import aoi_of_catalog, aoi_of_collection
from sen12ts_stac.storage import inside, is_url, resolve
from sen12ts_stac.storage.walk import walk
from sen12ts_stac.stream.backends import IndexOptions
from sen12ts_stac.stream.fetch import Fetcher
from sen12ts_stac.stream.record import (
    TripletRecord,
    _Interner,
    _merge_stats,
    is_triplet_collection,
    record_from_item,
    resolve_href,
)


class _Progress:
    def __init__(self, enabled: bool | None, what: str):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._p = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._p = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._p.add_task(what)
            self._p.start()
        self.what = what

    def update(self, docs: int, records: int) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self.what}: {docs} documents, {records} triplets")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


def records(entry: str, filt: Filter, opts: IndexOptions, fetcher: Fetcher) -> list[TripletRecord]:
    """Follow child/item links from ``entry`` with the storage walker's threads, descending only
    into triplet collections (and, with filters, only into wanted AOIs and blocks)."""
    blocks = filt.blocks()
    intern = _Interner()
    records: list[TripletRecord] = []
    triplet_collections: dict[str, tuple[dict, str]] = {}
    # one statistics dict per triplet collection, filled after the walk: records made while
    # walking already point at it
    stats: dict[str, dict] = {}
    progress = _Progress(opts.progress, f"indexing {entry}")

    fence = None if is_url(entry) or opts.allow_outside_root else _Fence(_local_root(entry, fetcher))

    def visit(loc: str, obj: dict) -> tuple[TripletRecord | None, list[str]]:
        """Runs in a walker thread: an item becomes its record right here, so the walk never
        holds more than a few parsed items; other documents give the links to follow."""
        t = obj.get("type")
        if t == "Feature":
            record = record_from_item(obj, loc, stats, intern)
            if fence is not None and record is not None:
                for href in record.hrefs.values():
                    fence.check(loc, href)
            return record, []
        if t == "Catalog":
            aoi = aoi_of_catalog(obj.get("id"))
            if aoi and not filt.wants_aoi(aoi):
                return None, []
        if t == "Collection":
            cid = str(obj.get("id", ""))
            if not is_triplet_collection(obj) or not filt.wants_collection(cid):
                return None, []
            aoi = aoi_of_collection(cid)
            if aoi and not filt.wants_aoi(aoi):
                return None, []
            triplet_collections[cid] = (obj, loc)
            stats.setdefault(cid, {})
        out = []
        for link in obj.get("links") or []:
            if not isinstance(link, dict) or link.get("rel") not in ("child", "item") or not link.get("href"):
                continue
            href = link["href"]
            if blocks is not None and link["rel"] == "child":
                m = re.search(r"(block_[^/]+)/catalog\.json$", str(href))
                if m and m.group(1) not in blocks:
                    continue
            target = resolve_href(loc, href)
            if fence is not None:
                fence.check(loc, target)
            out.append(target)
        return None, out

    def read(loc: str) -> tuple[dict, str]:
        return fetcher.get_json(loc), fetcher.final_url(loc)

    try:
        for record in walk(entry, visit, read=read, workers=max(1, opts.concurrency)):
            if record is not None and filt.match(record):
                records.append(record)
            progress.update(fetcher.stats.documents, len(records))
    finally:
        progress.close()
    for cid, (coll, loc) in triplet_collections.items():
        stats[cid].update(collection_stats(coll, loc, fetcher))
    return records


def _local_root(entry: str, fetcher: Fetcher) -> str:
    """The folder of a local catalog's root: where its ``root`` link points (when that is a local
    file above the entry), else the entry's own folder."""
    folder = os.path.dirname(entry)
    try:
        link = next(
            (
                l.get("href")
                for l in fetcher.get_json(entry).get("links") or []
                if isinstance(l, dict) and l.get("rel") == "root"
            ),
            None,
        )
        target = resolve(entry, link) if link else None
    except UserError:
        target = None
    if target and not is_url(target) and inside(os.path.dirname(target), entry):
        folder = os.path.dirname(target)
    return os.path.realpath(folder)


class _Fence:
    """A local catalog may not make the loader read outside its root folder (symlinks resolved):
    ``load_index(..., allow_outside_root=True)`` lifts this for trees that really span folders."""

    def __init__(self, root: str):
        self.root = root

    def check(self, where: str, target: str) -> None:
        if is_url(target):
            return
        if not inside(self.root, os.path.realpath(target)):
            raise UserError(
                f"{where}: refused href {target}: it lies outside the catalog root {self.root} "
                "(allow_outside_root=True allows it)"
            )


def collection_stats(coll: dict, loc: str, fetcher: Fetcher) -> dict:
    """Statistics for a triplet collection at ``loc``: its own ``item_assets``, then those of its
    sibling collections (the S1/S2/label collections its ``parent`` catalog links)."""
    sources = [coll]
    parent = next((l["href"] for l in coll.get("links", []) if l.get("rel") == "parent" and l.get("href")), None)
    if parent:
        try:
            parent_loc = resolve_href(loc, parent)
            for link in fetcher.get_json(parent_loc).get("links", []):
                if link.get("rel") == "child" and link.get("href"):
                    child_loc = resolve_href(parent_loc, link["href"])
                    if child_loc != loc:
                        c = fetcher.get_json(child_loc)
                        if c.get("type") == "Collection":
                            sources.append(c)
        except UserError:
            pass  # statistics are optional
    return _merge_stats(sources)
