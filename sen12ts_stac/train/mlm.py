"""The STAC item of a trained model, with the Machine Learning Model extension (MLM v1.4.0):
architecture, tasks, inputs (bands, shapes, z-score scaling), outputs (classes), hyperparameters,
the weights file as the ``mlm:model`` asset, and a ``derived_from`` link to the catalog the model
was trained on. Validated against the offline schema in tests."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from sen12ts_stac.fsio import write_json
from sen12ts_stac.spec.vocabulary import EXTENSIONS
from sen12ts_stac.storage.checksums import sha256_multihash
from sen12ts_stac.stream import TripletRecord

MLM_SCHEMA = EXTENSIONS["mlm"]
FILE_SCHEMA = EXTENSIONS["file"]


def catalog_href(catalog: str) -> str:
    """The catalog as a link target: URLs as given, local folders as the absolute path of their
    ``catalog.json``."""
    s = os.fspath(catalog)
    if "://" in s:  # http(s), stac-api+https, mlhub+https, s3 ...
        return s
    p = Path(s).resolve()
    return str(p / "catalog.json") if p.is_dir() else str(p)


def mlm_input(
    name: str,
    bands: Sequence[str],
    shape: Sequence[int],
    dim_order: Sequence[str],
    *,
    scaling: dict[str, dict] | None = None,
    description: str | None = None,
    data_type: str = "float32",
) -> dict:
    """A Model Input Object; ``scaling`` {band: {"mean", "stddev"}} becomes per-band z-score
    ``value_scaling``."""
    out: dict[str, Any] = {
        "name": name,
        "bands": list(bands),
        "input": {"shape": list(shape), "dim_order": list(dim_order), "data_type": data_type},
    }
    if description:
        out["description"] = description
    if scaling:
        out["value_scaling"] = [
            {"type": "z-score", "mean": scaling[b]["mean"], "stddev": scaling[b]["stddev"]} for b in bands
        ]
    return out


def mlm_output(
    name: str,
    tasks: Sequence[str],
    shape: Sequence[int],
    dim_order: Sequence[str],
    *,
    data_type: str = "float32",
    classes: list[dict] | None = None,
    description: str | None = None,
) -> dict:
    out: dict[str, Any] = {
        "name": name,
        "tasks": list(tasks),
        "result": {"shape": list(shape), "dim_order": list(dim_order), "data_type": data_type},
    }
    if description:
        out["description"] = description
    if classes is not None:
        out["classification:classes"] = classes
    return out


def mlm_name(text: str) -> str:
    """``text`` made fit for ``mlm:name`` (letters first, then letters, digits, ``_ . -``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    return name if name[:1].isalpha() else f"model-{name}"


def _file_fields(path: Path) -> dict:
    return {"file:size": path.stat().st_size, "file:checksum": sha256_multihash(path)}


def model_item(
    *,
    item_id: str,
    title: str,
    description: str,
    catalog: str,
    records: Sequence[TripletRecord],
    out_dir: str | Path,
    weights: str | Path,
    architecture: str,
    tasks: Sequence[str],
    inputs: list[dict],
    outputs: list[dict],
    hyperparameters: dict,
    total_parameters: int,
    bands: list[dict],
    device: torch.device,
    batch_size: int,
    assets: dict[str, dict] | None = None,
    properties: dict | None = None,
) -> dict:
    """The item dict. ``weights`` and the ``assets`` hrefs are files inside ``out_dir`` (linked
    relatively); ``records`` are the training triplets (footprint and time range)."""
    out_dir = Path(out_dir)
    weights = Path(weights)
    item_id = mlm_name(item_id)
    xs = [v for r in records for v in (r.bbox[0], r.bbox[2])]
    ys = [v for r in records for v in (r.bbox[1], r.bbox[3])]
    bbox = [min(xs), min(ys), max(xs), max(ys)]
    ring = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]
    dates = sorted(r.s2_date for r in records)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    props: dict[str, Any] = {
        "title": title,
        "description": description,
        "datetime": None,
        "start_datetime": f"{dates[0].isoformat()}T00:00:00Z",
        "end_datetime": f"{dates[-1].isoformat()}T23:59:59Z",
        "created": now,
        "mlm:name": item_id,
        "mlm:architecture": architecture,
        "mlm:tasks": list(tasks),
        "mlm:framework": "PyTorch",
        "mlm:framework_version": torch.__version__.split("+")[0],
        "mlm:memory_size": weights.stat().st_size,
        "mlm:total_parameters": int(total_parameters),
        "mlm:pretrained": False,
        "mlm:pretrained_source": None,
        "mlm:batch_size_suggestion": int(batch_size),
        "mlm:accelerator": "cuda" if device.type == "cuda" else "amd64",
        "mlm:accelerator_constrained": False,
        "mlm:accelerator_summary": f"trained on {device.type}; runs on CPU or CUDA",
        "mlm:input": inputs,
        "mlm:output": outputs,
        "mlm:hyperparameters": hyperparameters,
        "bands": bands,
        "sen12ts:training_triplets": len(records),
        "sen12ts:training_tiles": len({r.tile for r in records}),
        "sen12ts:aois": sorted({r.aoi for r in records}),
    }
    props.update(properties or {})
    item_assets: dict[str, dict] = {
        "model": {
            "href": os.path.relpath(weights, out_dir),
            "type": "application/octet-stream; application=pytorch",
            "title": "PyTorch weights and the config to rebuild the model (torch.save of a dict)",
            "roles": ["mlm:model", "mlm:weights", "data"],
            "mlm:artifact_type": "torch.save",
            # STAC 1.1 allows item-level bands (which MLM's band check wants) only when an
            # asset lists bands too; the model's input bands are the natural ones
            "bands": bands,
            **_file_fields(weights),
        },
    }
    for key, a in (assets or {}).items():
        p = Path(a["href"])
        p = p if p.is_absolute() else out_dir / p
        if p.exists():
            item_assets[key] = {**a, "href": os.path.relpath(p, out_dir), **_file_fields(p)}
    href = catalog_href(catalog)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [MLM_SCHEMA, FILE_SCHEMA],
        "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": bbox,
        "properties": props,
        "links": [
            {
                "rel": "derived_from",
                "href": href,
                "type": "application/json",
                "title": "the SEN12TS catalog this model was trained on",
            },
        ],
        "assets": item_assets,
    }


def write_model_item(path: str | Path, item: dict) -> Path:
    write_json(path, item)
    return Path(path)
