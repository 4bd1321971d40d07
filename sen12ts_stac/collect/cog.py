"""The one COG writer: lossless ZSTD, 256 x 256 internal blocks, band-interleaved (each band its
own tiles, so a reader decodes only the bands it asks for), band descriptions, nodata and
scale/offset, written through rio-cogeo and validated by ``rio_cogeo.cog_validate`` in the tests.

A 256 x 256 chip is exactly one block, so no overviews are written: a reader gets the whole
band with a single range request, and the quick-look PNG serves as the preview.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate

from sen12ts_stac.fsio import atomic_path
from sen12ts_stac.storage.checksums import sha256_multihash
from sen12ts_stac.spec.bands import Product
from sen12ts_stac.spec.grid import Tile

BLOCK = 256
# Horizontal differencing for integers (2), floating-point predictor for floats (3).
PREDICTOR = {"float32": 3, "int16": 2, "uint16": 2, "uint8": 2}
GDAL_CONFIG = {"GDAL_NUM_THREADS": "1", "GDAL_TIFF_INTERNAL_MASK": "TRUE"}


def cog_profile(dtype: str) -> dict:
    return {
        "driver": "GTiff",
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "interleave": "band",
        "compress": "ZSTD",
        "zstd_level": 9,
        "predictor": PREDICTOR[dtype],
    }


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    size: int
    checksum: str  # multihash sha2-256


def write_cog(path: str | os.PathLike, data: np.ndarray, product: Product, tile: Tile) -> WrittenFile:
    """Write ``data`` (bands, 256, 256) as a COG of ``product``'s layout on ``tile``'s grid."""
    if data.ndim != 3 or data.shape[0] != len(product.bands) or data.shape[1:] != tile.shape:
        raise ValueError(f"{path}: expected {len(product.bands)} x {tile.shape} for {product.key}, got {data.shape}")
    data = data.astype(product.dtype, copy=False)
    src_profile = {
        "driver": "GTiff",
        "dtype": product.dtype,
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "crs": tile.crs,
        "transform": tile.transform,
        "nodata": product.nodata,
    }
    with rasterio.Env(**GDAL_CONFIG), MemoryFile() as mem:
        with mem.open(**src_profile) as src:
            src.write(data)
            for i, band in enumerate(product.bands, start=1):
                src.set_band_description(i, band.name)
            if any(b.scale is not None for b in product.bands):
                src.scales = tuple(b.scale if b.scale is not None else 1.0 for b in product.bands)
                src.offsets = tuple(b.offset if b.offset is not None else 0.0 for b in product.bands)
        with mem.open() as src, atomic_path(path) as tmp:
            cog_translate(
                src,
                tmp,
                cog_profile(product.dtype),
                nodata=None if (isinstance(product.nodata, float) and math.isnan(product.nodata)) else product.nodata,
                overview_level=0,
                in_memory=True,
                quiet=True,
                config=GDAL_CONFIG,
            )
    final = Path(path)
    return WrittenFile(final, final.stat().st_size, sha256_multihash(final))
