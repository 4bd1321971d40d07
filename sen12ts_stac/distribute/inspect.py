"""``info``: a quick summary of a catalog written by ``create`` (or any static STAC catalog), in a
local folder or at an http(s) or object-store URL."""

from __future__ import annotations

import os
from collections import Counter

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import catalog_entry
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.storage import is_url, resolve
from sen12ts_stac.storage.walk import DocumentError, walk_documents


def summarise(path: str | os.PathLike) -> list[str]:
    s = os.fspath(path)
    if is_url(s):
        entry = s + "catalog.json" if s.endswith("/") else s
    else:
        entry = str(catalog_entry(path).resolve())
    try:
        return _summarise(entry)
    except DocumentError as e:
        raise UserError(e.line()) from None


def _summarise(entry: str) -> list[str]:
    items: Counter = Counter()
    splits: Counter = Counter()
    seasons: Counter = Counter()
    tiles: set[str] = set()
    collections: list[tuple[str, str]] = []
    dates: list[str] = []
    nbytes = 0
    assets_seen: set[str] = set()
    root: dict = {}
    for p, obj in walk_documents(entry):
        root = root or obj
        t = obj.get("type")
        if t == "Collection":
            collections.append((obj["id"], obj.get("title", "")))
        elif t == "Feature":
            items[obj.get("collection", "?")] += 1
            props = obj.get("properties", {})
            if V.SPLIT in props:
                splits[props[V.SPLIT]] += 1
                seasons[props.get(V.SEASON, "?")] += 1
            if V.TILE in props:
                tiles.add(props[V.TILE])
            if props.get("datetime"):
                dates.append(props["datetime"])
            for a in obj.get("assets", {}).values():  # triplet records repeat their features' assets
                href = a.get("href", "")
                target = resolve(p, href) or href
                if target not in assets_seen:
                    assets_seen.add(target)
                    nbytes += a.get("file:size", 0)
    out = [f"{root.get('id')}: {root.get('title', root.get('description', ''))}", f"  {entry}"]
    out.append(f"collections: {len(collections)}")
    for cid, title in collections:
        out.append(f"  {cid:<36} {items.get(cid, 0):>7} items  {title}")
    out.append(f"items: {sum(items.values())}  tiles: {len(tiles)}  triplets: {sum(splits.values())}")
    if splits:
        out.append("splits: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
        out.append("seasons: " + ", ".join(f"{k} {v}" for k, v in sorted(seasons.items())))
    if dates:
        out.append(f"dates: {min(dates)[:10]} .. {max(dates)[:10]}")
    out.append(
        f"asset bytes (file:size): {nbytes:,}"
        + (f"  ({nbytes / max(1, sum(splits.values())) / 1e6:.2f} MB per triplet)" if splits else "")
    )
    return out
