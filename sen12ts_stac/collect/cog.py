"""The one COG writer: lossless ZSTD, 256 x 256 internal tiles, band-interleaved (each band its
own tile, so a reader decodes only the bands it asks for), band descriptions, units, nodata and
scale/offset, and for label files a colour table and the class names; validated by
``rio_cogeo.cog_validate`` in the tests.

A 256 x 256 chip is exactly one tile per band, so no overviews are written: a reader gets a whole
band with a single range request, and the quick-look PNG serves as the preview. The files are
tiled (TIFF ``TileWidth``/``TileLength`` 256); ``rio cogeo info`` and rasterio's ``is_tiled``
still print ``Tiled: False``, because they call a file tiled only when its block is narrower
than the image, which a one-tile-wide image never is.

How: the pixels and every piece of metadata go into an uncompressed in-memory GTiff, which GDAL's
GTiff ``CreateCopy`` with ``COPY_SRC_OVERVIEWS=YES`` turns into the COG layout (IFD first, then
the tiles), compressing once. That is the last step of ``rio_cogeo.cog_translate``; we call it
directly because ``cog_translate`` rebuilds the file through a temporary dataset that keeps
descriptions, tags, scales/offsets and a colormap but drops band unit types.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.shutil import copy as gdal_copy

from sen12ts_stac.fsio import atomic_path
from sen12ts_stac.spec.bands import Product
from sen12ts_stac.spec.classes import ClassTable
from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.storage.checksums import sha256_multihash

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


def class_tags(classes: ClassTable) -> dict[str, str]:
    """Band metadata naming every class of a label file: ``CLASS_TABLE`` (the table id) and
    ``CLASS_<value>`` = the class name. GeoTIFF has no field of its own for category names (GDAL
    keeps them and raster attribute tables in a ``.aux.xml`` sidecar), so they travel as band
    metadata inside the file; ``rasterio.open(f).tags(1)`` reads them."""
    return {"CLASS_TABLE": classes.id, **{f"CLASS_{c.value}": c.name.strip() for c in classes}}


def class_colormap(classes: ClassTable, nodata: float | None) -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table: every class its colour, no-data transparent, other values black."""
    cmap = {v: (0, 0, 0, 255) for v in range(256)}
    for c in classes:
        cmap[c.value] = (*c.rgb, 255)
    if nodata is not None:
        cmap[int(nodata)] = (0, 0, 0, 0)
    return cmap


def write_cog(
    path: str | os.PathLike, data: np.ndarray, product: Product, tile: Tile, classes: ClassTable | None = None
) -> WrittenFile:
    """Write ``data`` (bands, 256, 256) as a COG of ``product``'s layout on ``tile``'s grid;
    ``classes`` (single-band label files) adds a colour table and the class names."""
    if data.ndim != 3 or data.shape[0] != len(product.bands) or data.shape[1:] != tile.shape:
        raise ValueError(f"{path}: expected {len(product.bands)} x {tile.shape} for {product.key}, got {data.shape}")
    if classes is not None and (data.shape[0] != 1 or product.dtype != "uint8"):
        raise ValueError(f"{path}: a class table needs a single-band uint8 product, {product.key} is not")
    data = data.astype(product.dtype, copy=False)
    nodata = None if (isinstance(product.nodata, float) and math.isnan(product.nodata)) else product.nodata
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
                if band.unit:
                    src.set_band_unit(i, band.unit)
            if any(b.scale is not None for b in product.bands):
                src.scales = tuple(b.scale if b.scale is not None else 1.0 for b in product.bands)
                src.offsets = tuple(b.offset if b.offset is not None else 0.0 for b in product.bands)
            if classes is not None:
                src.update_tags(1, **class_tags(classes))
                src.write_colormap(1, class_colormap(classes, nodata))
        with mem.open() as src, atomic_path(path) as tmp:
            gdal_copy(src, tmp, copy_src_overviews=True, **cog_profile(product.dtype))
    final = Path(path)
    return WrittenFile(final, final.stat().st_size, sha256_multihash(final))
