"""Test helpers for the data sources: a loopback copy of the live STAC APIs (``stac_world``),
folders laid out like the original SEN12TS files (``legacy_files``) and a stand-in for the
Descartes Labs platform (``dl_standin``)."""
