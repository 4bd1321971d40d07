"""``import-legacy``: folders of the original SEN12TS GeoTIFFs -> COGs and the same catalog as
``create``, through the same collector (the ``legacy`` source reads the files; see
``sen12ts_stac.sources.legacy``), so writing, resume and the catalog tree are shared."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sen12ts_stac.collect.run import CreateConfig, RunSummary, create
from sen12ts_stac.errors import UserError
from sen12ts_stac.sources import legacy
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.seasons import PairingRules


@dataclass
class ImportReport:
    """What was found in the folder, beside what ``create`` reports."""

    aoi: str
    folder: Path
    triplets: int
    tiles: int
    tiles_with_label_file: int
    unpaired: list[str]
    outside: list[str]
    ignored: list[str]
    seasons: Counter

    def lines(self) -> list[str]:
        out = [
            f"originals: {self.triplets} S1/S2 pairs on {self.tiles} tiles in {self.folder} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.seasons.items()))}), label files for "
            f"{self.tiles_with_label_file} tiles"
        ]
        if self.tiles_with_label_file < self.tiles:
            out.append(
                f"tiles without a label file: {self.tiles - self.tiles_with_label_file} (label from the CDL band of "
                "the older "
                "California S2 export where present, else all no data)"
            )
        for what, names in (
            ("unpaired (no partner in s1/ or s2/), not imported", self.unpaired),
            ("S2 date outside the 2020 seasons, not imported", self.outside),
            ("not .tif, ignored", self.ignored),
        ):
            if names:
                out.append(f"{what}: {len(names)}, e.g. {names[0]}")
        return out


def import_legacy(
    folder: str | Path,
    *,
    aoi: str | None = None,
    out: str | Path = Path("catalogs"),
    max_invalid: float = 1.0,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    executor=None,
) -> tuple[RunSummary, ImportReport]:
    """Import a folder of originals (``s1/``, ``s2/``, ``labels/``) into ``out``; resumes like create."""
    if not 0.0 <= max_invalid <= 1.0:
        raise UserError(f"--max-invalid must be between 0 and 1, got {max_invalid}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    folder = Path(folder).resolve()
    found = legacy.scan(folder)
    name = get_aoi(aoi).name if aoi else legacy.infer_aoi(found)
    legacy.check_aoi(found, get_aoi(name))
    seasons: Counter[str] = Counter()
    for ts in found.triplets.values():
        for t in ts:
            seasons[next(s for s, season in legacy.SEASONS.items() if season.contains(t.s2_date))] += 1
    report = ImportReport(
        name,
        folder,
        found.n_triplets,
        len(found.triplets),
        sum(1 for t in found.triplets if t in found.labels),
        found.unpaired,
        found.outside,
        found.ignored,
        seasons,
    )
    config = CreateConfig(
        aoi=name,
        out=Path(out),
        source="legacy",
        seed=seed,
        max_tiles=None,
        tiles=tuple(found.tile_ids),
        workers=workers,
        # every original triplet is kept (up to the invalid-pixel limit); the pairing was done by the original
        rules=PairingRules(
            max_invalid_fraction=max_invalid, max_triplets_per_tile_season=1000, max_attempts_per_tile_season=1000
        ),
        source_options={"dir": str(folder)},
    )
    summary = create(config, overwrite=overwrite, progress=progress, executor=executor)
    return summary, report


__all__ = ["ImportReport", "import_legacy"]
