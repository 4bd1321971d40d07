"""The one filter over the dataset, shared by the stream index (which matches triplet records)
and ``download`` (which matches STAC items): AOIs, splits (with the aliases users type), seasons,
bbox, tiles, a time interval, collections and asset keys, normalised once. Pure: no I/O.

Times: ``date_range`` is a pair of dates (or ``"START/END"``, either end ``..``), inclusive;
``datetime`` is an RFC 3339 instant or interval, as STAC APIs take it. Both become one UTC
interval; a triplet record matches by the day of its Sentinel-2 date, an item by its
``datetime`` or ``start_datetime``/``end_datetime``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.spec.seasons import SEASONS, SPLITS

UTC = dt.timezone.utc


class Record(Protocol):
    """What :meth:`Filter.match` reads of a triplet record (``stream.record.TripletRecord``)."""

    @property
    def aoi(self) -> str: ...
    @property
    def split(self) -> str: ...
    @property
    def season(self) -> str: ...
    @property
    def tile(self) -> str: ...
    @property
    def collection(self) -> str | None: ...
    @property
    def s2_date(self) -> dt.date: ...
    @property
    def bbox(self) -> tuple[float, float, float, float]: ...


def _as_set(
    value, what: str, known: Iterable[str] | None = None, alias: Mapping[str, str] | None = None, lower: bool = False
) -> frozenset[str] | None:
    """A comma-separated string, or an iterable of them, as a set checked against ``known``."""
    if value is None:
        return None
    parts = [value] if isinstance(value, str) else [str(v) for v in value]
    items = [v.strip() for p in parts for v in p.split(",")]
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


def _day(value: Any, what: str, end: bool) -> dt.datetime | None:
    """A date (or the date part of a string) as the first or last instant of that day, UTC."""
    if value is None or value == "" or value == "..":
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            raise UserError(f"bad {what} {value!r}: expected an ISO date YYYY-MM-DD") from None
    return dt.datetime.combine(value, dt.time.max if end else dt.time.min, tzinfo=UTC)


def instant(text: str, end: bool) -> dt.datetime | None:
    """An RFC 3339 date or date-time as a UTC instant (a bare date: its first or last instant);
    None for ``..`` or an empty string."""
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max if end else dt.time.min, tzinfo=UTC)
        t = dt.datetime.fromisoformat(text.replace("z", "Z"))
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    except ValueError:
        raise UserError(
            f"bad datetime {text!r}: expected an RFC 3339 date or time, or an interval START/END ('..' open)"
        ) from None


def _bbox(bbox) -> tuple[float, float, float, float]:
    if isinstance(bbox, str):
        from sen12ts_stac.spec.aois import parse_bbox

        bbox = parse_bbox(bbox)
    try:
        vals = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise UserError(f"bad bbox {bbox!r}: expected (minlon, minlat, maxlon, maxlat)") from None
    if len(vals) != 4 or not (vals[0] <= vals[2] and vals[1] <= vals[3]):
        raise UserError(f"bad bbox {bbox!r}: expected (minlon, minlat, maxlon, maxlat)")
    return vals[0], vals[1], vals[2], vals[3]


def _overlaps(a: tuple[float, float, float, float], b) -> bool:
    return not (b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1])


@dataclass(frozen=True)
class Filter:
    """Which triplets or items are wanted; ``None`` means "no restriction"."""

    aois: frozenset[str] | None = None
    splits: frozenset[str] | None = None
    seasons: frozenset[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    tiles: frozenset[str] | None = None
    start: dt.datetime | None = None  # UTC
    end: dt.datetime | None = None
    collections: frozenset[str] | None = None
    assets: frozenset[str] | None = None  # asset keys (download)

    @classmethod
    def make(
        cls,
        *,
        aoi=None,
        split=None,
        seasons=None,
        bbox=None,
        tiles=None,
        date_range=None,
        datetime=None,
        collections=None,
        assets=None,
    ) -> Filter:
        start = end = None
        if date_range is not None:
            if isinstance(date_range, str):
                if "/" not in date_range:
                    raise UserError(f"bad date_range {date_range!r}: expected 'START/END' (either may be '..')")
                date_range = date_range.split("/", 1)
            if len(date_range) != 2:
                raise UserError(f"bad date_range {date_range!r}: expected (start, end)")
            start = _day(date_range[0], "date_range start", end=False)
            end = _day(date_range[1], "date_range end", end=True)
            if start and end and start > end:
                raise UserError(f"bad date_range: start {start.date()} is after end {end.date()}")
        if datetime:
            a, sep, b = datetime.partition("/")
            start, end = instant(a, False), instant(b if sep else a, True)
            if start and end and start > end:
                raise UserError(f"bad datetime interval {datetime!r}: start is after end")
        return cls(
            aois=_as_set(aoi, "AOI", lower=True),
            splits=_as_set(split, "split", SPLITS, V.SPLIT_ALIASES),
            seasons=_as_set(seasons, "season", tuple(SEASONS)),
            bbox=_bbox(bbox) if bbox is not None else None,
            tiles=_as_set(tiles, "tile"),
            start=start,
            end=end,
            collections=_as_set(collections, "collection"),
            assets=_as_set(assets, "asset"),
        )

    # -- triplet records ------------------------------------------------------------------------

    def match(self, r: Record) -> bool:
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
        if not self._in_time(_day(r.s2_date, "date", False), _day(r.s2_date, "date", True)):
            return False
        return self.bbox is None or _overlaps(self.bbox, r.bbox)

    # -- STAC items -----------------------------------------------------------------------------

    def wants_item(self, item: dict) -> bool:
        props = item.get("properties") or {}
        if self.collections is not None and item.get("collection") not in self.collections:
            return False
        if self.aois is not None:
            aoi = props.get(V.AOI) or V.aoi_of_collection(item.get("collection") or "")
            if aoi is None or str(aoi).lower() not in self.aois:
                return False
        if self.splits is not None and props.get(V.SPLIT) not in self.splits:
            return False
        if self.seasons is not None and props.get(V.SEASON) not in self.seasons:
            return False
        if self.tiles is not None and props.get(V.TILE) not in self.tiles:
            return False
        if self.bbox is not None:
            b = item.get("bbox") or []
            if len(b) not in (4, 6):
                return False
            if not _overlaps(self.bbox, (b[0], b[1], b[3], b[4]) if len(b) == 6 else b):
                return False
        if self.start is not None or self.end is not None:
            try:
                lo = instant(str(props.get("start_datetime") or props.get("datetime") or ""), False)
                hi = instant(str(props.get("end_datetime") or props.get("datetime") or ""), True)
            except UserError:
                return False  # an item whose time does not parse matches no time filter
            if lo is None or hi is None or not self._in_time(lo, hi):
                return False
        return True

    def _in_time(self, lo: dt.datetime | None, hi: dt.datetime | None) -> bool:
        """Does [lo, hi] overlap the filter's interval?"""
        if self.end is not None and lo is not None and lo > self.end:
            return False
        return not (self.start is not None and hi is not None and hi < self.start)

    # -- pruning catalogs and API searches ------------------------------------------------------

    @property
    def datetime(self) -> str | None:
        """The interval as a STAC API ``datetime`` parameter."""
        if self.start is None and self.end is None:
            return None
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        s = self.start.astimezone(UTC).strftime(fmt) if self.start else ".."
        e = self.end.astimezone(UTC).strftime(fmt) if self.end else ".."
        return f"{s}/{e}"

    def wants_aoi(self, name: str) -> bool:
        return self.aois is None or name.lower() in self.aois

    def wants_collection(self, cid: str) -> bool:
        if self.collections is not None and cid not in self.collections:
            return False
        aoi = V.aoi_of_collection(cid)
        return self.aois is None or aoi is None or aoi in self.aois

    def blocks(self) -> frozenset[str] | None:
        """The catalog blocks that can hold the wanted tiles (block catalogs are pruned by name)."""
        if self.tiles is None:
            return None
        from sen12ts_stac.spec.grid import Tile

        out = set()
        for t in self.tiles:
            try:
                out.add(Tile.from_id(t).block)
            except (ValueError, KeyError, UserError):
                return None  # not a sen12ts tile id: do not prune
        return frozenset(out)
