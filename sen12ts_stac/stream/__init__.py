"""Streaming triplets for training: an index of triplet records from any catalog form
(:mod:`.index`), band/window reads of COGs with retries (:mod:`.read`) and a resumable,
sharded ``torchdata.nodes`` loader (:mod:`.pipeline`). See docs/streaming.md."""

from sen12ts_stac.stream.index import FetchStats, Filter, TripletRecord, load_index, summarize
from sen12ts_stac.stream.pipeline import LoaderStats, TripletLoader, triplet_loader
from sen12ts_stac.stream.read import AssetReadError, ReadOptions, read_bands

__all__ = [
    "AssetReadError",
    "FetchStats",
    "Filter",
    "LoaderStats",
    "ReadOptions",
    "TripletLoader",
    "TripletRecord",
    "load_index",
    "read_bands",
    "summarize",
    "triplet_loader",
]
