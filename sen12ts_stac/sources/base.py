"""The one small protocol every data source implements, and the registry that names them.

A source answers four questions about a tile: which scenes exist in a season (``inventory``),
and the pixels of a Sentinel-1 series, a Sentinel-2 scene and the land-cover label, already on the
tile grid (256 x 256, 10 m, the tile's UTM zone), in the layouts of ``sen12ts_stac.spec.bands``.
The collector applies the pairing rules; sources never decide what makes a triplet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.aois import AOI
from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.spec.seasons import Inventory, OpticalScene, RadarSeries, Season


@dataclass
class Reading:
    """Pixels of one product on a tile, plus where they came from."""

    data: np.ndarray  # (bands, 256, 256) in the product's dtype
    derived_from: list[str] = field(default_factory=list)  # hrefs of the scenes used (provenance)
    properties: dict = field(default_factory=dict)  # extra STAC properties for the item


@runtime_checkable
class Source(Protocol):
    name: str
    license: str  # SPDX id (or "other") of the data it produces
    providers: list[dict]  # STAC provider objects describing where the pixels come from

    def inventory(self, tile: Tile, season: Season) -> Inventory: ...

    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading: ...

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading: ...

    def read_label(self, tile: Tile) -> Reading: ...


SourceFactory = Callable[..., Source]
_REGISTRY: dict[str, SourceFactory] = {}


def register(name: str, factory: SourceFactory) -> None:
    """Make a source available to ``create --source NAME``. ``factory(aoi, seed=..., **options)``."""
    _REGISTRY[name] = factory


def source_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def make_source(name: str, aoi: AOI, seed: int = 0, **options) -> Source:
    _load_builtin()
    if name not in _REGISTRY:
        raise UserError(f"unknown source {name!r}; known sources: {', '.join(sorted(_REGISTRY))}")
    known = source_options(name)
    unknown = sorted(set(options) - known - {"rules"}) if known is not None else []
    if unknown:
        raise UserError(f"unknown {name} source option(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")
    return _REGISTRY[name](aoi, seed=seed, **options)


def source_options(name: str) -> set[str] | None:
    """The ``--source-option`` keys source ``name`` takes: its constructor's keyword arguments
    beyond aoi, seed and rules (None if it takes ``**options`` and checks them itself)."""
    import inspect

    factory = _REGISTRY[name]
    target = getattr(factory, "target", None)
    try:
        params = inspect.signature(target() if target else factory).parameters.values()
    except (TypeError, ValueError):  # not introspectable: let it check its options itself
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name not in ("aoi", "seed", "rules") and p.kind is not p.VAR_POSITIONAL}


def _load_builtin() -> None:
    if "synthetic" not in _REGISTRY:
        from sen12ts_stac.sources import synthetic

        register("synthetic", synthetic.SyntheticSource)
    # Live and legacy sources, imported on first use (descartes needs the collect-dl extra).
    for name, module, cls in (("stac-api", "stac_api", "StacApiSource"), ("legacy", "legacy", "LegacySource"),
                              ("descartes", "descartes", "DescartesSource")):
        if name not in _REGISTRY:
            register(name, _lazy(module, cls))


def _lazy(module: str, cls: str) -> SourceFactory:
    def target():
        import importlib

        return getattr(importlib.import_module(f"sen12ts_stac.sources.{module}"), cls)

    def factory(aoi: AOI, **options) -> Source:
        return target()(aoi, **options)

    factory.target = target  # type: ignore[attr-defined]
    return factory
