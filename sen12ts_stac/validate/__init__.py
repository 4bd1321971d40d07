"""``sen12ts-stac validate``: prove a STAC catalog right, offline and fast.

    from sen12ts_stac.validate import Options, validate
    report = validate("catalogs/", Options(assets=False))
    print(report.text()); exit(report.exit_code())

Schemas (``schemas``), the catalog walk (``engine``), records, structure, links and the asset
probe (``checks``), the SEN12TS and STAC rules (``rules``), items against their files
(``claims``) and the report (``report``) live in their own modules; ``command`` is the thin CLI.
What a hostile catalog can and cannot make it do: ``docs/security.md``.
"""

from sen12ts_stac.validate.engine import Options, validate
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, WARNING, Finding, Report

__all__ = ["validate", "Options", "Report", "Finding", "ERROR", "WARNING", "NOT_CHECKED"]
