"""``export``: every collection's items as one newline-delimited JSON file and one stac-geoparquet
file, written beside its ``collection.json`` and linked from it as collection-level assets.

::

    <aoi>/<kind>/collection.json     assets: "geoparquet-items" -> ./items.parquet
                                             "ndjson-items"     -> ./items.ndjson
    <aoi>/<kind>/items.ndjson        one item per line, compact JSON
    <aoi>/<kind>/items.parquet       stac-geoparquet 1.1 (the collection in its metadata)

Hrefs: an item's relative hrefs (assets and links) are relative to the item's own JSON file.
In the export they are rewritten to be relative to the export file's folder, the collection
folder, so that any reader that resolves them against the file it read (stream.load_index,
rustac, DuckDB, a person) lands on the right file, and the folder stays movable. Nothing else
is changed; :func:`rebase_item` maps an exported item back to exactly its JSON.
What stac-geoparquet itself changes on a round trip is documented in docs/distribute.md
(absent struct fields come back as nulls, datetimes with microseconds).

Both files are written under temporary names and renamed into place; a second run rewrites
them. ``create`` rewrites collection.json, so export again after adding tiles.
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import orjson
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import atomic_path, catalog_entry, read_json, walk_local, write_json
from sen12ts_stac.spec.vocabulary import EXTENSIONS
from sen12ts_stac.storage.checksums import sha256_multihash

PARQUET_KEY = "geoparquet-items"
NDJSON_KEY = "ndjson-items"
PARQUET_TYPE = "application/vnd.apache.parquet"
NDJSON_TYPE = "application/x-ndjson"
PARQUET_NAME = "items.parquet"
NDJSON_NAME = "items.ndjson"
FILE_EXT = EXTENSIONS["file"]
FORMATS = ("ndjson", "parquet")


@dataclass
class CollectionExport:
    """What was exported for one collection."""

    id: str
    folder: Path
    items: int
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        names = ", ".join(f"{p.name} ({p.stat().st_size:,} B)" for p in self.files) or "nothing (no items)"
        return f"{self.id}: {self.items} items -> {names} [{self.seconds:.1f} s]"


def find_collections(root: str | Path) -> list[Path]:
    """Every collection.json reachable from a catalog folder or file through local child links."""
    return [
        Path(p)
        for p, obj in walk_local(catalog_entry(root), ("child",), descend=lambda o: o.get("type") != "Collection")
        if obj.get("type") == "Collection"
    ]


def iter_items(collection_json: str | Path) -> Iterator[tuple[str, dict]]:
    """``(folder of the item relative to the collection folder, item)`` for every item below a
    collection, in link order (child catalogs before their items)."""
    base = posixpath.dirname(os.path.abspath(collection_json))  # as the walker names files
    for p, obj in walk_local(collection_json, ("child", "item")):
        if obj.get("type") == "Feature":
            yield posixpath.relpath(posixpath.dirname(p), base), obj


def _relative_to(target: str, start: str) -> str:
    """``target`` (a normalised path relative to some folder F) as seen from ``start`` (a folder
    below F, also relative to F), ``./``-prefixed unless it goes up: pure string work."""
    t = [] if target in ("", ".") else target.split("/")
    s = [] if start in ("", ".") else start.split("/")
    i = 0
    while i < len(t) - 1 and i < len(s) and t[i] == s[i]:
        i += 1
    parts = [".."] * (len(s) - i) + t[i:]
    r = "/".join(parts)
    return r if r.startswith("../") else "./" + r


def rebase_href(href: str, from_dir: str, to_dir: str) -> str:
    """A relative ``href`` valid in folder ``from_dir``, rewritten to be valid in ``to_dir``
    (both relative to the same folder). Absolute URLs and paths are returned unchanged."""
    if not href or "://" in href or href.startswith(("/", "#")) or (len(href) > 1 and href[1] == ":"):
        return href
    return _relative_to(posixpath.normpath(posixpath.join(from_dir, href)), to_dir)


def rebase_item(item: dict, from_dir: str, to_dir: str = "") -> dict:
    """A copy of ``item`` whose relative asset and link hrefs are moved from ``from_dir`` to
    ``to_dir`` (folders relative to the collection folder; "" is the collection folder)."""
    out = dict(item)
    out["links"] = [{**lk, "href": rebase_href(lk.get("href", ""), from_dir, to_dir)} for lk in item.get("links", [])]
    out["assets"] = {
        k: {**a, "href": rebase_href(a.get("href", ""), from_dir, to_dir)} for k, a in item.get("assets", {}).items()
    }
    return out


def read_parquet_items(path: str | Path) -> list[dict]:
    """The items of a stac-geoparquet file, as dicts (what stac-geoparquet gives back)."""
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import stac_table_to_items

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable parquet file ({e})") from None
    return list(stac_table_to_items(table))


def _write_ndjson(items: Iterable[bytes], path: Path) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for line in items:
            f.write(line)
            n += 1
    return n


def _fresh_copy(item: dict, memo=None) -> dict:
    """What stac-geoparquet's converter needs of its per-item deepcopy: it replaces ``geometry``
    and ``proj:geometry`` (top level, properties, assets) by WKB, so copying those containers is
    enough. Items parsed from the ndjson are thrown away after, so nothing else can be shared."""
    out = dict(item)
    out["properties"] = dict(item.get("properties") or {})
    out["assets"] = {k: dict(v) for k, v in (item.get("assets") or {}).items()}
    return out


def _write_parquet(ndjson: Path, path: Path, collection: dict, chunk_size: int) -> None:
    from stac_geoparquet.arrow import _batch, parse_stac_ndjson_to_parquet

    # stac-geoparquet 0.8 deep-copies every item twice (schema pass, data pass): 75% of the time
    # of an export (measured: 50 s -> 12 s for 6,238 items). Swap in the container copy above.
    saved = getattr(_batch, "deepcopy", None)
    if saved is not None:
        _batch.deepcopy = _fresh_copy  # type: ignore[assignment]  # stac-geoparquet's module attribute, patched here
    with atomic_path(path) as tmp:
        try:
            parse_stac_ndjson_to_parquet(ndjson, tmp, chunk_size=chunk_size, collections={collection["id"]: collection})
        except Exception as e:  # noqa: BLE001 - arrow raises many types; name the file, keep one line
            raise UserError(
                f"{ndjson}: stac-geoparquet conversion failed ({type(e).__name__}: {e})".replace("\n", " ")
            ) from None
        finally:
            if saved is not None:
                _batch.deepcopy = saved


def _asset(name: str, media_type: str, title: str, description: str, path: Path) -> dict:
    return {
        "href": f"./{name}",
        "type": media_type,
        "title": title,
        "description": description,
        "roles": ["stac-items"],
        "file:size": path.stat().st_size,
        "file:checksum": sha256_multihash(path),
    }


def export_collection(
    collection_json: str | Path, formats: Iterable[str] = FORMATS, chunk_size: int = 8192
) -> CollectionExport:
    """Export one collection (see the module docstring)."""
    t0 = time.perf_counter()
    path = Path(collection_json)
    formats = tuple(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise UserError(f"unknown export format {', '.join(bad) or '(none)'}; known: {', '.join(FORMATS)}")
    collection = read_json(path)
    folder = path.parent
    ndjson, parquet = folder / NDJSON_NAME, folder / PARQUET_NAME

    def lines() -> Iterator[bytes]:
        for item_dir, item in iter_items(path):
            yield orjson.dumps(rebase_item(item, item_dir)) + b"\n"

    # The ndjson is also the input of the parquet conversion; without "ndjson" it is a temporary file.
    target = ndjson if "ndjson" in formats else folder / f".{NDJSON_NAME}.export.tmp"
    try:
        n = _write_ndjson(lines(), target)
        if n and "parquet" in formats:
            _write_parquet(target, parquet, collection, chunk_size)
    finally:
        if target != ndjson:
            target.unlink(missing_ok=True)

    assets = {k: v for k, v in (collection.get("assets") or {}).items() if k not in (PARQUET_KEY, NDJSON_KEY)}
    written = []
    if n and "parquet" in formats:
        assets[PARQUET_KEY] = _asset(
            PARQUET_NAME,
            PARQUET_TYPE,
            "GeoParquet STAC items",
            "Snapshot of the collection's STAC items in stac-geoparquet format; relative hrefs are relative to this "
            "file.",
            parquet,
        )
        written.append(parquet)
    if n and "ndjson" in formats:
        assets[NDJSON_KEY] = _asset(
            NDJSON_NAME,
            NDJSON_TYPE,
            "STAC items (newline-delimited JSON)",
            "Every item of the collection, one per line; relative hrefs are relative to this file.",
            ndjson,
        )
        written.append(ndjson)
    for fmt, p in (("ndjson", ndjson), ("parquet", parquet)):  # an empty collection keeps no stale export
        if not n and fmt in formats:
            p.unlink(missing_ok=True)
    if assets:
        collection["assets"] = assets
        exts = collection.setdefault("stac_extensions", [])
        if FILE_EXT not in exts:
            exts.append(FILE_EXT)
    else:
        collection.pop("assets", None)
    write_json(path, collection)
    return CollectionExport(collection.get("id", str(path)), folder, n, written, time.perf_counter() - t0)


def export_catalog(
    root: str | Path, formats: Iterable[str] = FORMATS, progress: bool = True, chunk_size: int = 8192, workers: int = 1
) -> list[CollectionExport]:
    """Export every collection below ``root`` (a catalog folder or JSON file); with ``workers`` > 1
    several collections at once, in separate processes. Results are in catalog order."""
    collections = find_collections(root)
    if not collections:
        raise UserError(f"{root}: no collections found below this catalog")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    formats = tuple(formats)
    columns = [
        TextColumn("[bold]{task.description}"),
        MofNCompleteColumn(),
        TextColumn("collections, {task.fields[items]} items"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("export", total=len(collections), items=0)
        done = 0
        if workers == 1 or len(collections) == 1:
            out = []
            for c in collections:
                out.append(export_collection(c, formats, chunk_size))
                done += out[-1].items
                bar.update(task, advance=1, items=done)
            return out
        import concurrent.futures as cf

        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(export_collection, c, formats, chunk_size): i for i, c in enumerate(collections)}
            results: dict[int, CollectionExport] = {}
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                done += results[futures[fut]].items
                bar.update(task, advance=1, items=done)
        return [results[i] for i in range(len(collections))]
