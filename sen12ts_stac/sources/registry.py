"""The sources by name (``create --source NAME``): the built-in ones are imported on first use
(descartes needs the ``collect-dl`` extra), so that no source module is loaded until it is
asked for, and ``base`` (the protocol) imports none of them."""

from __future__ import annotations

from typing import Callable

from sen12ts_stac.errors import UserError
from sen12ts_stac.sources.base import Source
from sen12ts_stac.spec.aois import AOI

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
        assert known is not None  # unknown is empty without known
        raise UserError(
            f"unknown {name} source option(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}"
        )
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
    for name, module, cls in (
        ("synthetic", "synthetic", "SyntheticSource"),
        ("stac-api", "stac_api", "StacApiSource"),
        ("legacy", "legacy", "LegacySource"),
        ("descartes", "descartes", "DescartesSource"),
    ):
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
