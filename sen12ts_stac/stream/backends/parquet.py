"""stac-geoparquet files (written by ``export``, stac-geoparquet or rustac), local, over http(s)
or in an object store: the simple filters are pushed down into the scan, and records are built
column-wise, without decoding geometries or making item dicts."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Sequence

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.spec.vocabulary import ASSET_KEYS, sibling_collection_ids
from sen12ts_stac.storage import ReadError, is_url, open_seekable
from sen12ts_stac.stream.backends import IndexOptions
from sen12ts_stac.stream.backends.static import collection_stats
from sen12ts_stac.stream.fetch import Fetcher, _short
from sen12ts_stac.stream.record import (
    TripletRecord,
    _Interner,
    _merge_stats,
    is_triplet_collection,
    make_record,
    resolve_href,
)


def _in_folder(folder: str) -> str:
    """A document location inside ``folder`` (hrefs resolve against a document's folder)."""
    folder = os.fspath(folder)
    if is_url(folder):
        return folder.rstrip("/") + "/"
    return os.path.join(os.path.abspath(folder), "")


def _parquet_filter(schema_names: Sequence[str], filt: Filter):
    """Push the simple filters down into the parquet scan (row groups / pages are skipped)."""
    import pyarrow.compute as pc

    expr = None

    def add(column: str, values):
        nonlocal expr
        if values is None or column not in schema_names:
            return
        e = pc.field(column).isin(sorted(values))
        expr = e if expr is None else expr & e

    add(V.SPLIT, filt.splits)
    add(V.SEASON, filt.seasons)
    add(V.TILE, filt.tiles)
    add("collection", filt.collections)
    return expr


def records(loc: str, filt: Filter, opts: IndexOptions, fetcher: Fetcher) -> list[TripletRecord]:
    """A stac-geoparquet file (written by stac-geoparquet or rustac). Collections stored in the
    file's ``stac-geoparquet`` metadata give the statistics. Relative asset hrefs resolve
    against the item's ``self`` link, else ``base_href``, else the parquet file's folder."""
    import pyarrow.parquet as pq

    try:
        fh = open_seekable(loc)
    except ReadError as e:
        raise (UserError if e.missing or not is_url(loc) else SourceError)(f"{loc}: cannot open ({e})") from None
    try:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
        meta = json.loads((pf.schema_arrow.metadata or {}).get(b"stac-geoparquet", b"{}"))
        expr = _parquet_filter(names, filt)
        table = pq.read_table(fh, filters=expr)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise UserError(f"{loc}: not a readable stac-geoparquet file ({_short(e)})") from None
    finally:
        fh.close()
    colls = dict(meta.get("collections") or {})
    if meta.get("collection"):
        colls.setdefault(meta["collection"].get("id", ""), meta["collection"])
    base = _in_folder(opts.base_href) if opts.base_href else (loc if is_url(loc) else os.path.abspath(loc))
    stats = {}
    for cid, coll in colls.items():
        if not (is_triplet_collection(coll) or cid.endswith("_triplets")):
            continue
        stats[cid] = _merge_stats(colls[s] for s in [cid, *sibling_collection_ids(cid)] if s in colls)
        if not ({"s1", "s2"} <= set(stats[cid])):  # siblings not in the file: through the parent link
            stats[cid] = collection_stats(coll, resolve_href(base, "collection.json"), fetcher) or stats[cid]
    return _records_from_table(table, base, stats, filt)


def _list_field(lists, name: str) -> list[list | None]:
    """``list<struct>`` column -> per row, the list of one struct field (None for null rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    vt = lists.type.value_type
    if not pa.types.is_struct(vt) or name not in [f.name for f in vt]:
        return [None] * len(lists)
    values = lists.flatten().field(name).to_pylist()
    out: list[list | None] = []
    i = 0
    for n in pc.list_value_length(lists).to_pylist():
        if n is None:
            out.append(None)
        else:
            out.append(values[i : i + n])
            i += n
    return out


def _records_from_table(table, base: str, stats: dict, filt: Filter) -> list[TripletRecord]:
    """Records straight from the parquet columns: asset hrefs, band names and raster:bands
    fields are pulled out column-wise, and each row's band layout is looked up, not rebuilt.
    No geometry is decoded and no item dict is made (a generic reader spends most of its time
    there: about 0.7 ms per row)."""
    import pyarrow as pa

    intern = _Interner()
    out: list[TripletRecord] = []
    if table.num_rows == 0 or "assets" not in table.column_names or V.SPLIT not in table.column_names:
        return out
    props_cols = [
        c for c in table.column_names if c in ("datetime", "proj:shape") or c.startswith(("ml-aoi:", V.PREFIX + ":"))
    ]
    for batch in table.to_batches(max_chunksize=16384):
        n = batch.num_rows
        col = {name: batch.column(name) for name in batch.schema.names}
        assets = col["assets"]
        per_asset = {}
        for key in ASSET_KEYS:
            if key not in [f.name for f in assets.type]:
                continue
            a = pa.compute.struct_field(assets, key)
            fields = [f.name for f in a.type]
            hrefs = pa.compute.struct_field(a, "href").to_pylist() if "href" in fields else [None] * n
            band_field = "bands" if "bands" in fields else ("eo:bands" if "eo:bands" in fields else None)
            names = _list_field(pa.compute.struct_field(a, band_field), "name") if band_field else [None] * n
            if "raster:bands" in fields:
                rb = pa.compute.struct_field(a, "raster:bands")
                triples = list(zip(*[_list_field(rb, f) for f in ("nodata", "scale", "offset")]))
            else:
                triples = [(None, None, None)] * n
            per_asset[key] = (hrefs, names, triples)
        links = col.get("links")
        rels: list[list | None] = _list_field(links, "rel") if links is not None else [None] * n
        lhrefs: list[list | None] = _list_field(links, "href") if links is not None else [None] * n
        bbox = col.get("bbox")
        if bbox is not None and pa.types.is_struct(bbox.type):
            bbox_rows: list[Sequence[float] | None] = list(
                zip(*[pa.compute.struct_field(bbox, f).to_pylist() for f in ("xmin", "ymin", "xmax", "ymax")])
            )
        else:
            bbox_rows = bbox.to_pylist() if bbox is not None else [None] * n
        props_rows = {c: col[c].to_pylist() for c in props_cols if c in col}
        ids = col["id"].to_pylist()
        colls = col["collection"].to_pylist() if "collection" in col else [None] * n
        for i in range(n):
            props = {c: v[i] for c, v in props_rows.items() if v[i] is not None}
            if V.SPLIT not in props:
                continue
            if isinstance(props.get("datetime"), dt.datetime):
                props["datetime"] = props["datetime"].isoformat()
            self_href = next((h for r, h in zip(rels[i] or (), lhrefs[i] or ()) if r == "self"), None)
            where = self_href or base
            hrefs, metas = {}, {}
            for key, (h, names, triples) in per_asset.items():
                href = h[i]
                if href:
                    hrefs[key] = resolve_href(where, href)
                    nod, sc, of = triples[i]
                    m = len(nod or sc or of or ())
                    raster = list(zip(nod or [None] * m, sc or [None] * m, of or [None] * m))
                    metas[key] = intern.layout(key, names[i], raster)
            if not ({"s1", "s2"} & set(hrefs)):
                continue
            r = make_record(ids[i], colls[i], props, bbox_rows[i], hrefs, metas, stats, intern, where)
            if filt.match(r):
                out.append(r)
    return out
