"""The filters of :func:`~sen12ts_stac.stream.load_index`, normalised once: AOIs, splits (with
the aliases users type), seasons, bbox, tiles, date range and collections."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.seasons import SEASONS, SPLITS
from sen12ts_stac.spec.vocabulary import SPLIT_ALIASES
from sen12ts_stac.stream.record import TripletRecord


def _as_set(
    value, what: str, known: Iterable[str] | None = None, alias: Mapping[str, str] | None = None, lower: bool = False
) -> frozenset[str] | None:
    """A comma-separated string or an iterable as a set, checked against ``known``."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    if lower or known is not None:
        items = [v.lower() for v in items]
    items = [(alias or {}).get(v, v) for v in items if v]
    if not items:
        raise UserError(f"empty {what} filter")
    if known is not None:
        bad = sorted(set(items) - set(known))
        if bad:
            raise UserError(f"unknown {what} {', '.join(bad)}; known: {', '.join(known)}")
    return frozenset(items)


def _as_date(value, what: str) -> dt.date | None:
    if value is None or value == "" or value == "..":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise UserError(f"bad {what} {value!r}: expected an ISO date YYYY-MM-DD") from None


@dataclass(frozen=True)
class Filter:
    """The filters of :func:`load_index`, normalised. ``None`` means "no restriction"."""

    aois: frozenset[str] | None = None
    splits: frozenset[str] | None = None
    seasons: frozenset[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    tiles: frozenset[str] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    collections: frozenset[str] | None = None

    @classmethod
    def make(
        cls, *, aoi=None, split=None, seasons=None, bbox=None, tiles=None, date_range=None, collections=None
    ) -> "Filter":
        if bbox is not None:
            if isinstance(bbox, str):
                from sen12ts_stac.spec.aois import parse_bbox

                bbox = parse_bbox(bbox)
            bbox = tuple(float(v) for v in bbox)
            if len(bbox) != 4 or not (bbox[0] <= bbox[2] and bbox[1] <= bbox[3]):
                raise UserError(f"bad bbox {bbox!r}: expected (minlon, minlat, maxlon, maxlat)")
        start = end = None
        if date_range is not None:
            if isinstance(date_range, str):
                if "/" not in date_range:
                    raise UserError(f"bad date_range {date_range!r}: expected 'START/END' (either may be '..')")
                date_range = date_range.split("/", 1)
            if len(date_range) != 2:
                raise UserError(f"bad date_range {date_range!r}: expected (start, end)")
            start, end = _as_date(date_range[0], "date_range start"), _as_date(date_range[1], "date_range end")
            if start and end and start > end:
                raise UserError(f"bad date_range: start {start} is after end {end}")
        return cls(
            aois=_as_set(aoi, "AOI", lower=True),
            splits=_as_set(split, "split", SPLITS, SPLIT_ALIASES),
            seasons=_as_set(seasons, "season", tuple(SEASONS)),
            bbox=bbox,
            tiles=_as_set(tiles, "tile"),
            start=start,
            end=end,
            collections=_as_set(collections, "collection"),
        )

    def match(self, r: TripletRecord) -> bool:
        if self.aois is not None and r.aoi.lower() not in self.aois:
            return False
        if self.splits is not None and r.split not in self.splits:
            return False
        if self.seasons is not None and r.season not in self.seasons:
            return False
        if self.tiles is not None and r.tile not in self.tiles:
            return False
        if self.collections is not None and r.collection not in self.collections:
            return False
        if self.start is not None and r.s2_date < self.start:
            return False
        if self.end is not None and r.s2_date > self.end:
            return False
        if self.bbox is not None:
            a, b = self.bbox, r.bbox
            if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
                return False
        return True

    @property
    def datetime(self) -> str | None:
        """The date range as a STAC API ``datetime`` interval (the triplet's datetime is its S2 date)."""
        if self.start is None and self.end is None:
            return None
        s = f"{self.start.isoformat()}T00:00:00Z" if self.start else ".."
        e = f"{self.end.isoformat()}T23:59:59Z" if self.end else ".."
        return f"{s}/{e}"

    def wants_aoi(self, name: str) -> bool:
        return self.aois is None or name.lower() in self.aois

    def wants_collection(self, cid: str) -> bool:
        return self.collections is None or cid in self.collections

    def blocks(self) -> frozenset[str] | None:
        """The catalog blocks that can hold the wanted tiles (block catalogs are pruned by name)."""
        if self.tiles is None:
            return None
        from sen12ts_stac.spec.grid import Tile

        out = set()
        for t in self.tiles:
            try:
                out.add(Tile.from_id(t).block)
            except (ValueError, KeyError):
                return None  # not a sen12ts tile id: do not prune
        return frozenset(out)
