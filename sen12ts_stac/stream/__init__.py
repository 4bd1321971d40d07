"""Streaming triplets for training, in the shape of TorchGeo (records, samplers, transforms and
the loader apart): the triplet record (:mod:`.record`) and its filters (:mod:`.filters`); an
index of records from any catalog form (:mod:`.index`, one backend per form in
:mod:`.backends`, documents read through :mod:`.fetch`); band/window reads of COGs with retries
(:mod:`.read`) and a resumable, sharded ``torchdata.nodes`` loader (:mod:`.pipeline`). See
docs/streaming.md."""

from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.stream.fetch import FetchStats
from sen12ts_stac.stream.index import load_index, summarize
from sen12ts_stac.stream.pipeline import LoaderStats, TripletLoader, triplet_loader
from sen12ts_stac.stream.read import AssetReadError, ReadOptions, read_bands
from sen12ts_stac.stream.record import TripletRecord

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
