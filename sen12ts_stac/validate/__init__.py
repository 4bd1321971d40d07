"""``sen12ts-stac validate``: prove a STAC catalog right, offline and fast.

    from sen12ts_stac.validate import Options, validate
    report = validate("catalogs/", Options(assets=False))
    print(report.text()); exit(report.exit_code())

Schemas (``schemas``), the catalog walk (``engine``), the checks beyond schemas (``checks``) and
the report (``report``) live in their own modules; ``command`` is the thin CLI.
"""

from sen12ts_stac.validate.engine import Options, validate
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, WARNING, Finding, Report

__all__ = ["validate", "Options", "Report", "Finding", "ERROR", "WARNING", "NOT_CHECKED"]
