"""Where pixels come from: one module per source behind the protocol in ``base``, named in
``registry``."""

from sen12ts_stac.sources.base import Reading, Source
from sen12ts_stac.sources.registry import make_source, register, source_names

__all__ = ["Reading", "Source", "make_source", "register", "source_names"]
